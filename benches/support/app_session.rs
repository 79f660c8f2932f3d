//! A RUNNING session of the example admin on a simulated agent, written straight into the
//! database, and the client side of the stream routes: a signed WebSocket upgrade and RFC 6455
//! frames read and written by hand (the manager sends them unfragmented).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use bai_agent_sim::SimAgent;

use super::signed_load::{ADMIN_ACCESS_KEY, Target};

/// Inserts the simulated agent and one RUNNING session `name` of the example admin on it,
/// whose kernel serves `service_ports` on `127.0.0.1`; returns (session id, kernel id).
pub async fn running_session(
    client: &tokio_postgres::Client,
    agent: &SimAgent,
    name: &str,
    service_ports: serde_json::Value,
) -> (Uuid, Uuid) {
    let (session, kernel) = (Uuid::new_v4(), Uuid::new_v4());
    client
        .execute(
            "INSERT INTO agents (id, status, status_changed, region, scaling_group,
                 available_slots, occupied_slots, addr, version, architecture)
             VALUES ($1, 'ALIVE', now(), 'local', 'default', '{}', '{}', $2, $3, 'x86_64')",
            &[&agent.id, &agent.info.addr, &agent.info.version],
        )
        .await
        .expect("adding the simulated agent");
    client
        .execute(
            "WITH owner AS (SELECT \"user\" AS uuid FROM keypairs WHERE access_key = $3),
                  grp AS (SELECT id FROM groups WHERE name = 'default' LIMIT 1),
                  s AS (
                INSERT INTO sessions (id, creation_id, name, session_type, cluster_mode,
                    cluster_size, scaling_group_name, target_sgroup_names, domain_name, group_id,
                    user_uuid, access_key, images, requested_slots, status, status_history)
                SELECT $1, 'bench', $6, 'INTERACTIVE', 'single-node', 1, 'default',
                       ARRAY['default']::varchar[], 'default', grp.id, owner.uuid, $3,
                       ARRAY['cr.backend.ai/testing/python:3.9-ubuntu20.04']::varchar[],
                       '{\"cpu\": \"1\", \"mem\": \"1073741824\"}', 'RUNNING', '{}'
                  FROM owner, grp
                RETURNING id, name, user_uuid, group_id)
             INSERT INTO kernels (id, session_id, session_name, session_type, cluster_mode,
                 cluster_size, cluster_role, cluster_idx, local_rank, cluster_hostname,
                 scaling_group, domain_name, group_id, user_uuid, access_key, image,
                 architecture, registry, tag, occupied_slots, requested_slots, status,
                 status_history, agent, agent_addr, kernel_host, service_ports)
             SELECT $2, s.id, s.name, 'INTERACTIVE', 'single-node', 1, 'main', 1, 0, 'main1',
                    'default', 'default', s.group_id, s.user_uuid, $3,
                    'cr.backend.ai/testing/python:3.9-ubuntu20.04', 'x86_64', 'cr.backend.ai',
                    '3.9-ubuntu20.04', '{}', '{}', 'RUNNING', '{}', $4, $5, '127.0.0.1', $7
               FROM s",
            &[
                &session,
                &kernel,
                &ADMIN_ACCESS_KEY,
                &agent.id,
                &agent.info.addr,
                &name,
                &service_ports,
            ],
        )
        .await
        .expect("adding a RUNNING session on the simulated agent");
    (session, kernel)
}

/// Opens the WebSocket `path` as the example admin; panics with the reply when refused.
pub async fn ws_connect(target: &Target, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(target.addr)
        .await
        .expect("connecting to the manager");
    let signed = target.request("GET", path, "text/plain", b"");
    let signed = String::from_utf8_lossy(&signed);
    let head = signed.trim_end_matches("\r\n");
    let request = format!(
        "{head}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .expect("sending the upgrade");
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n\r\n") {
        reply.push(tcp.read_u8().await.expect("reading the upgrade reply"));
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 101"),
        "upgrade refused: {reply}"
    );
    tcp
}

/// Reads one frame into `payload`; returns its opcode (`None` at the end of the stream).
pub async fn read_frame(tcp: &mut TcpStream, payload: &mut Vec<u8>) -> Option<u8> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.ok()?;
    let length = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await.ok()?),
        127 => tcp.read_u64().await.ok()?,
        short => u64::from(short),
    };
    payload.resize(usize::try_from(length).ok()?, 0);
    tcp.read_exact(payload).await.ok()?;
    Some(head[0] & 0x0f)
}

/// A binary frame of `payload` as a client sends it, masked with the all-zero key (legal, and
/// no XOR pass, so the client's CPU stays out of the figure).
pub fn binary_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x82u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}
