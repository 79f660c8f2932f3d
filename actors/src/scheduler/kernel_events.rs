//! A batch of kernel events, as the scheduler handles it before replying to the event bus, so
//! the bus acknowledges only events that were applied. The batch is split by session into at
//! most [`BATCH_TRANSACTIONS`] shares, applied side by side, each in stream order in one
//! transaction: a few commits for all the kernels whose events arrived together, instead of
//! one per event. When a share's transaction fails (a deadlock with another worker's batch,
//! one bad event), that share is applied again one event per transaction: each kernel's
//! events in stream order, different kernels side by side (at most [`MAX_KERNELS_IN_FLIGHT`] at
//! once), and a kernel whose event failed keeps that event and its later ones unacknowledged,
//! in order, for redelivery.

use futures::StreamExt;
use slog::{info, warn};
use uuid::Uuid;

use super::dispatch::DispatchDeps;
use super::events::{apply_kernel_event, apply_kernel_event_batch};
use crate::wire::entry::compare_stream_ids;
use crate::wire::{EventProducer, KernelEvent, KernelEventKind};

/// Kernels whose events are applied at the same time within one batch.
pub const MAX_KERNELS_IN_FLIGHT: usize = 32;

/// A kernel event and the stream id it came with.
pub type StreamedKernelEvent = (String, KernelEvent);

/// Splits a batch into one queue per kernel, kernels in order of first appearance, each queue
/// in stream order.
pub fn per_kernel(events: Vec<StreamedKernelEvent>) -> Vec<Vec<StreamedKernelEvent>> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut queues: std::collections::HashMap<Uuid, Vec<StreamedKernelEvent>> =
        std::collections::HashMap::new();
    for (id, event) in events {
        let queue = queues.entry(event.kernel_id).or_insert_with(|| {
            order.push(event.kernel_id);
            Vec::new()
        });
        queue.push((id, event));
    }
    order
        .into_iter()
        .filter_map(|kernel| queues.remove(&kernel))
        .collect()
}

/// Drops `kernel_preparing`/`kernel_creating` events followed by a later event of the same
/// kernel: the dispatcher marked the kernel PREPARING before it asked the agent, and every later
/// event's transition starts from there, so applying them would only open transactions that
/// change nothing (two per session, when the events of a kernel's start arrive together).
/// Returns what to apply, in order.
pub fn without_superseded(queue: Vec<StreamedKernelEvent>) -> Vec<StreamedKernelEvent> {
    let last = queue.len().saturating_sub(1);
    queue
        .into_iter()
        .enumerate()
        .filter(|(index, (_, event))| {
            *index == last
                || !matches!(
                    event.kind,
                    KernelEventKind::Preparing | KernelEventKind::Creating
                )
        })
        .map(|(_, streamed)| streamed)
        .collect()
}

/// The events of `queues` in the order of their stream ids (each kernel's queue is in stream
/// order already).
fn stream_order(queues: &[Vec<StreamedKernelEvent>]) -> Vec<&KernelEvent> {
    let mut all: Vec<&StreamedKernelEvent> = queues.iter().flatten().collect();
    all.sort_by(|(a, _), (b, _)| compare_stream_ids(a, b));
    all.into_iter().map(|(_, event)| event).collect()
}

/// Applies a batch; returns the stream ids that were not applied (a failed event and the
/// events of the same kernel after it).
pub async fn apply_kernel_events(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    log: &slog::Logger,
    events: Vec<StreamedKernelEvent>,
) -> Vec<String> {
    let queues: Vec<Vec<StreamedKernelEvent>> = per_kernel(events)
        .into_iter()
        .map(without_superseded)
        .collect();
    let shares = split_by_session(queues, BATCH_TRANSACTIONS);
    futures::future::join_all(
        shares
            .into_iter()
            .map(|share| apply_share(deps, producer, log, share)),
    )
    .await
    .into_iter()
    .flatten()
    .collect()
}

/// Transactions one batch is split into, side by side on as many connections: a few commits
/// per batch instead of one per event, without putting all of PostgreSQL's work for the
/// batch on one backend.
pub const BATCH_TRANSACTIONS: usize = 4;

/// Splits kernel queues into at most `shares` parts, a session's kernels always in the same
/// part (its status is re-derived from all of them), sessions dealt round-robin in order of
/// first appearance.
pub fn split_by_session(
    queues: Vec<Vec<StreamedKernelEvent>>,
    shares: usize,
) -> Vec<Vec<Vec<StreamedKernelEvent>>> {
    let shares = shares.max(1);
    let mut parts: Vec<Vec<Vec<StreamedKernelEvent>>> = Vec::new();
    let mut share_of: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for queue in queues {
        let Some((_, first)) = queue.first() else {
            continue;
        };
        let next = share_of.len() % shares;
        let share = *share_of.entry(first.session_id).or_insert(next);
        if parts.len() <= share {
            parts.resize_with(share + 1, Vec::new);
        }
        parts[share].push(queue);
    }
    parts
}

/// Applies one share of a batch in one transaction, or, when that fails, one event per
/// transaction; returns the stream ids not applied.
async fn apply_share(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    log: &slog::Logger,
    queues: Vec<Vec<StreamedKernelEvent>>,
) -> Vec<String> {
    let in_stream_order = stream_order(&queues);
    match apply_kernel_event_batch(deps, producer, &in_stream_order).await {
        Ok(()) => return Vec::new(),
        Err(error) => {
            info!(log, "cannot apply kernel events in one transaction; applying them one by one";
                "events" => in_stream_order.len(), "error" => %error);
        }
    }
    futures::stream::iter(queues)
        .map(|queue| async move {
            let mut queue = queue.into_iter();
            while let Some((id, event)) = queue.next() {
                if let Err(error) = apply_kernel_event(deps, producer, &event).await {
                    warn!(log, "cannot apply a kernel event; it will be delivered again";
                        "kernel" => %event.kernel_id, "event" => ?event.kind, "error" => %error);
                    return std::iter::once(id).chain(queue.map(|(id, _)| id)).collect();
                }
            }
            Vec::new()
        })
        .buffer_unordered(MAX_KERNELS_IN_FLIGHT)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kernel: u128, kind: KernelEventKind) -> KernelEvent {
        KernelEvent {
            kind,
            kernel_id: Uuid::from_u128(kernel),
            session_id: Uuid::from_u128(kernel),
            reason: String::new(),
            creation_info: serde_json::Value::Null,
            exit_code: None,
        }
    }

    #[test]
    fn start_events_followed_by_a_later_one_are_not_applied() {
        let queue = vec![
            ("1-0".to_owned(), event(1, KernelEventKind::Preparing)),
            ("2-0".to_owned(), event(1, KernelEventKind::Creating)),
            ("3-0".to_owned(), event(1, KernelEventKind::Pulling)),
            ("4-0".to_owned(), event(1, KernelEventKind::Creating)),
            ("5-0".to_owned(), event(1, KernelEventKind::Started)),
        ];
        let kept: Vec<String> = without_superseded(queue)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(kept, vec!["3-0", "5-0"]);
    }

    #[test]
    fn the_last_event_of_a_kernel_is_always_applied() {
        let queue = vec![
            ("1-0".to_owned(), event(1, KernelEventKind::Preparing)),
            ("2-0".to_owned(), event(1, KernelEventKind::Creating)),
        ];
        let kept: Vec<String> = without_superseded(queue)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(kept, vec!["2-0"]);
    }

    #[test]
    fn a_batch_is_applied_in_stream_order_across_kernels() {
        let batch = vec![
            ("9-0".to_owned(), event(2, KernelEventKind::Pulling)),
            ("10-0".to_owned(), event(1, KernelEventKind::Started)),
            ("10-1".to_owned(), event(2, KernelEventKind::Started)),
            ("11-0".to_owned(), event(1, KernelEventKind::Terminated)),
        ];
        let queues = per_kernel(batch);
        let kinds: Vec<(u128, KernelEventKind)> = stream_order(&queues)
            .into_iter()
            .map(|event| (event.kernel_id.as_u128(), event.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (2, KernelEventKind::Pulling),
                (1, KernelEventKind::Started),
                (2, KernelEventKind::Started),
                (1, KernelEventKind::Terminated),
            ]
        );
    }

    #[test]
    fn a_sessions_kernels_share_one_transaction() {
        let mut second_kernel = event(3, KernelEventKind::Started);
        second_kernel.session_id = Uuid::from_u128(1);
        let batch = vec![
            ("1-0".to_owned(), event(1, KernelEventKind::Started)),
            ("1-1".to_owned(), event(2, KernelEventKind::Started)),
            ("1-2".to_owned(), second_kernel),
            ("1-3".to_owned(), event(4, KernelEventKind::Started)),
        ];
        let shares = split_by_session(per_kernel(batch), 2);
        let kernels: Vec<Vec<u128>> = shares
            .iter()
            .map(|share| {
                share
                    .iter()
                    .map(|queue| queue[0].1.kernel_id.as_u128())
                    .collect()
            })
            .collect();
        // Sessions 1, 2 and 4 dealt round-robin; kernel 3 goes with its session 1.
        assert_eq!(kernels, vec![vec![1, 3, 4], vec![2]]);
        assert_eq!(split_by_session(Vec::new(), 4).len(), 0);
    }

    #[test]
    fn each_kernel_keeps_its_events_in_stream_order() {
        let batch = vec![
            ("1-0".to_owned(), event(2, KernelEventKind::Creating)),
            ("2-0".to_owned(), event(1, KernelEventKind::Creating)),
            ("3-0".to_owned(), event(2, KernelEventKind::Started)),
            ("4-0".to_owned(), event(2, KernelEventKind::Terminated)),
            ("5-0".to_owned(), event(1, KernelEventKind::Started)),
        ];
        let queues = per_kernel(batch);
        let ids: Vec<Vec<&str>> = queues
            .iter()
            .map(|queue| queue.iter().map(|(id, _)| id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["1-0", "3-0", "4-0"], vec!["2-0", "5-0"]]);
        assert_eq!(queues[0][2].1.kind, KernelEventKind::Terminated);
    }
}
