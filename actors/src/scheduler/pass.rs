//! One scheduling pass end to end: read the snapshot, decide (on a blocking thread: the plan is
//! CPU work), reserve, and record why the rest waits.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use uuid::Uuid;

use super::load::{LoadError, LoadOptions, load_snapshot};
use super::placement::{KernelAssignment, PassPlan, plan_pass};
use super::reserve::{Admission, ReserveError, record_outcomes, reserve};
use crate::lock::Fence;

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Reserve(#[from] ReserveError),
    #[error("the placement task failed: {0}")]
    Plan(String),
}

/// What one pass did, with its timings (for logs and the benchmark).
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub pending: usize,
    pub agents: usize,
    pub planned: usize,
    pub scheduled: Vec<(Uuid, Vec<KernelAssignment>)>,
    pub taken_elsewhere: usize,
    pub no_longer_fit: usize,
    pub transactions: usize,
    pub load_time: Duration,
    pub plan_time: Duration,
    pub write_time: Duration,
    pub plan: PassPlan,
}

pub async fn run_pass(
    client: &mut Client,
    fence: Option<&Fence>,
    options: LoadOptions,
    admission: Admission,
) -> Result<PassReport, PassError> {
    let now = options.now;
    let started = Instant::now();
    let snapshot = load_snapshot(&*client, options).await?;
    let load_time = started.elapsed();
    let pending = snapshot.pending.len();
    let agents = snapshot.agents.len();

    let started = Instant::now();
    let plan = tokio::task::spawn_blocking(move || plan_pass(&snapshot))
        .await
        .map_err(|e| PassError::Plan(e.to_string()))?;
    let plan_time = started.elapsed();

    let started = Instant::now();
    let reservation = reserve(client, fence, &plan, now, admission).await?;
    let outcome_transactions = record_outcomes(client, fence, &plan, now).await?;
    let write_time = started.elapsed();
    Ok(PassReport {
        pending,
        agents,
        planned: plan.scheduled().count(),
        scheduled: reservation.scheduled,
        taken_elsewhere: reservation.taken_elsewhere,
        no_longer_fit: reservation.no_longer_fit,
        transactions: reservation.transactions + outcome_transactions,
        load_time,
        plan_time,
        write_time,
        plan,
    })
}
