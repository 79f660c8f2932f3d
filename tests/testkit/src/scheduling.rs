//! Invariant checks on the scheduler's tables that tests and benchmarks share.

/// Agents whose occupied slots exceed their available slots on any slot, or whose live kernels
/// together ask for more cpu or mem than the agent has (must be none).
pub async fn over_committed_agents(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT a.id FROM agents a, jsonb_each_text(a.occupied_slots) o
              WHERE o.value::numeric > coalesce((a.available_slots ->> o.key)::numeric, 0)
             UNION
             SELECT k.agent FROM kernels k JOIN agents a ON a.id = k.agent
              WHERE k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
              GROUP BY k.agent, a.available_slots
             HAVING sum((k.occupied_slots ->> 'cpu')::numeric) > (a.available_slots ->> 'cpu')::numeric
                 OR sum((k.occupied_slots ->> 'mem')::numeric) > (a.available_slots ->> 'mem')::numeric",
            &[],
        )
        .await
        .expect("checking over-commit")
        .iter()
        .map(|row| row.get(0))
        .collect()
}
