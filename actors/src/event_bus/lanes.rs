//! The event bus's bookkeeping between reading and acknowledging: one lane per subscriber, so
//! that a slow subscriber holds back only its own events, and an entry that is acknowledged
//! once every subscriber that wanted it has handled it.
//!
//! Each subscriber gets its events in stream order, one batch at a time: a lane sends again
//! only once its previous batch was answered, and then sends everything that queued up
//! meanwhile (so a slow subscriber catches up in fewer, larger batches). Events a subscriber
//! did not handle go back to the front of its lane and are offered again after a pause. No
//! I/O here: the consumer ([`super::consumer`]) sends and acknowledges; the reader renews claims.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{ReceivedEvent, Subscription};

/// An event handed to lanes and not yet handled by all of them.
struct Held {
    event: ReceivedEvent,
    /// Lanes that have not handled it yet.
    awaiting: usize,
}

struct Lane {
    subscription: Subscription,
    /// Sequence numbers of the events waiting for this subscriber, in stream order.
    waiting: VecDeque<u64>,
    /// A batch is with the subscriber.
    busy: bool,
    /// After events it did not handle: not offered again before this.
    resume_at: Option<Instant>,
}

/// A batch for one subscriber.
pub(super) struct LaneBatch {
    pub lane: usize,
    pub subscription: Subscription,
    /// What was sent, to settle the reply against.
    pub sent: Vec<u64>,
    pub events: Vec<ReceivedEvent>,
}

/// How a subscriber answered its lane's batch.
#[derive(Debug)]
pub(super) enum Outcome {
    Handled,
    /// It named these stream ids as not handled (now).
    NotHandled(HashSet<String>),
    /// It never answered (its mailbox closed, or it stopped mid-batch): none counts as handled.
    Lost,
}

impl Outcome {
    fn handled(&self, stream_id: &str) -> bool {
        match self {
            Outcome::Handled => true,
            Outcome::NotHandled(ids) => !ids.contains(stream_id),
            Outcome::Lost => false,
        }
    }
}

/// What a lane's reply settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Entries every subscriber that wanted them has now handled.
    pub handled: Vec<String>,
    /// Entries this subscriber did not handle: back in its lane.
    pub retried: usize,
}

#[derive(Default)]
pub(super) struct Lanes {
    lanes: Vec<Lane>,
    /// Boxed: a behind worker holds thousands of events, and a table of events inline is
    /// sized in powers of two of about 200 bytes each, kept at its largest once the backlog
    /// is gone, and held twice while it grows (at 10,000 agents, 7 MiB of a worker's peak).
    held: HashMap<u64, Box<Held>>,
    next_sequence: u64,
}

impl Lanes {
    /// Opens a lane for each subscription not seen yet (subscribers are only ever added, in
    /// order).
    pub fn add_subscribers(&mut self, subscriptions: &[Subscription]) {
        for subscription in subscriptions.iter().skip(self.lanes.len()) {
            self.lanes.push(Lane {
                subscription: subscription.clone(),
                waiting: VecDeque::new(),
                busy: false,
                resume_at: None,
            });
        }
    }

    /// Entries held: read and not yet handled by every subscriber that wanted them.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Puts each event in the lanes of the subscribers that want it; returns the stream ids of
    /// the events no subscriber wants (handled, as far as this worker is concerned).
    pub fn accept(&mut self, events: Vec<ReceivedEvent>) -> Vec<String> {
        let mut unwanted = Vec::new();
        for event in events {
            let sequence = self.next_sequence;
            let mut awaiting = 0;
            for lane in &mut self.lanes {
                if lane.subscription.interest.matches(&event.event) {
                    lane.waiting.push_back(sequence);
                    awaiting += 1;
                }
            }
            if awaiting == 0 {
                unwanted.push(event.stream_id);
                continue;
            }
            self.next_sequence += 1;
            self.held
                .insert(sequence, Box::new(Held { event, awaiting }));
        }
        unwanted
    }

    /// The batches idle lanes can send now, each with everything that waits in the lane.
    pub fn ready(&mut self, now: Instant) -> Vec<LaneBatch> {
        let mut batches = Vec::new();
        for (index, lane) in self.lanes.iter_mut().enumerate() {
            if lane.busy || lane.waiting.is_empty() || lane.resume_at.is_some_and(|at| at > now) {
                continue;
            }
            lane.resume_at = None;
            let sent: Vec<u64> = lane.waiting.drain(..).collect();
            let events = sent
                .iter()
                .filter_map(|sequence| self.held.get(sequence))
                .map(|held| held.event.clone())
                .collect();
            lane.busy = true;
            batches.push(LaneBatch {
                lane: index,
                subscription: lane.subscription.clone(),
                sent,
                events,
            });
        }
        batches
    }

    /// When the next lane that waits out a pause after unhandled events may send again.
    pub fn next_resume(&self) -> Option<Instant> {
        self.lanes
            .iter()
            .filter(|lane| !lane.busy && !lane.waiting.is_empty())
            .filter_map(|lane| lane.resume_at)
            .min()
    }

    /// Settles a lane's reply. What the subscriber did not handle goes back to the front of
    /// its lane, in order, and the lane pauses for `retry_after`.
    pub fn settle(
        &mut self,
        lane: usize,
        sent: Vec<u64>,
        outcome: &Outcome,
        now: Instant,
        retry_after: Duration,
    ) -> Settled {
        let mut settled = Settled::default();
        let mut again = Vec::new();
        for sequence in sent {
            let Some(held) = self.held.get_mut(&sequence) else {
                continue;
            };
            if !outcome.handled(&held.event.stream_id) {
                again.push(sequence);
                continue;
            }
            held.awaiting = held.awaiting.saturating_sub(1);
            if held.awaiting == 0
                && let Some(held) = self.held.remove(&sequence)
            {
                settled.handled.push(held.event.stream_id);
            }
        }
        if let Some(lane) = self.lanes.get_mut(lane) {
            lane.busy = false;
            if !again.is_empty() {
                settled.retried = again.len();
                lane.resume_at = Some(now + retry_after);
                // Everything sent was older than what queued behind it.
                for sequence in again.into_iter().rev() {
                    lane.waiting.push_front(sequence);
                }
            }
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use actix::prelude::*;

    use super::*;
    use crate::event_bus::{EventBatch, EventInterest, Unhandled};
    use crate::wire::{Event, Trigger};

    struct Nobody;
    impl Actor for Nobody {
        type Context = Context<Self>;
    }
    impl Handler<EventBatch> for Nobody {
        type Result = Result<(), Unhandled>;
        fn handle(&mut self, _: EventBatch, _: &mut Self::Context) -> Self::Result {
            Ok(())
        }
    }

    /// Lanes for subscribers wanting these event names (never started: no message is sent).
    fn lanes(interests: &[&[&str]]) -> Lanes {
        let system = System::new();
        let subscriptions: Vec<Subscription> = system.block_on(async {
            interests
                .iter()
                .enumerate()
                .map(|(index, names)| Subscription {
                    name: format!("subscriber {index}"),
                    interest: EventInterest::names(names),
                    recipient: Nobody.start().recipient(),
                })
                .collect()
        });
        let mut lanes = Lanes::default();
        lanes.add_subscribers(&subscriptions);
        lanes
    }

    fn event(id: &str, event: Event) -> ReceivedEvent {
        ReceivedEvent {
            stream_id: id.to_owned(),
            source: "manager".to_owned(),
            event,
        }
    }

    fn schedule(id: &str) -> ReceivedEvent {
        event(id, Event::Trigger(Trigger::DoSchedule))
    }

    fn prepare(id: &str) -> ReceivedEvent {
        event(id, Event::Trigger(Trigger::DoPrepare))
    }

    fn ids(batch: &LaneBatch) -> Vec<&str> {
        batch.events.iter().map(|e| e.stream_id.as_str()).collect()
    }

    const PAUSE: Duration = Duration::from_millis(500);

    #[test]
    fn an_entry_is_handled_only_once_every_subscriber_that_wanted_it_has_handled_it() {
        let mut lanes = lanes(&[&["do_schedule"], &["do_schedule", "do_prepare"]]);
        let now = Instant::now();
        let unwanted = lanes.accept(vec![
            schedule("1-0"),
            prepare("2-0"),
            event("3-0", Event::Trigger(Trigger::DoScale)),
        ]);
        assert_eq!(unwanted, ["3-0"]);
        let mut batches = lanes.ready(now);
        assert_eq!(batches.len(), 2);
        let second = batches.pop().unwrap();
        let first = batches.pop().unwrap();
        assert_eq!(ids(&first), ["1-0"]);
        assert_eq!(ids(&second), ["1-0", "2-0"]);
        let settled = lanes.settle(1, second.sent, &Outcome::Handled, now, PAUSE);
        assert_eq!(settled.handled, ["2-0"]);
        let settled = lanes.settle(0, first.sent, &Outcome::Handled, now, PAUSE);
        assert_eq!(settled.handled, ["1-0"]);
        assert_eq!(lanes.held(), 0);
    }

    #[test]
    fn a_busy_lane_holds_back_only_its_own_subscriber() {
        let mut lanes = lanes(&[&["do_schedule"], &["do_schedule"]]);
        let now = Instant::now();
        lanes.accept(vec![schedule("1-0")]);
        let mut batches = lanes.ready(now);
        let fast = batches.remove(1);
        let _slow = batches.remove(0);
        lanes.settle(1, fast.sent, &Outcome::Handled, now, PAUSE);
        lanes.accept(vec![schedule("2-0"), schedule("3-0")]);
        let batches = lanes.ready(now);
        assert_eq!(batches.len(), 1, "the slow lane has not answered");
        assert_eq!(batches[0].lane, 1);
        assert_eq!(ids(&batches[0]), ["2-0", "3-0"]);
    }

    #[test]
    fn unhandled_events_come_again_first_in_stream_order_after_the_pause() {
        let mut lanes = lanes(&[&["do_schedule"]]);
        let now = Instant::now();
        lanes.accept(vec![schedule("1-0"), schedule("2-0"), schedule("3-0")]);
        let batch = lanes.ready(now).remove(0);
        lanes.accept(vec![schedule("4-0")]);
        let unhandled = Outcome::NotHandled(["1-0".to_owned(), "3-0".to_owned()].into());
        let settled = lanes.settle(0, batch.sent, &unhandled, now, PAUSE);
        assert_eq!(settled.handled, ["2-0"]);
        assert_eq!(settled.retried, 2);
        assert!(lanes.ready(now + PAUSE / 2).is_empty());
        assert_eq!(lanes.next_resume(), Some(now + PAUSE));
        let again = lanes.ready(now + PAUSE).remove(0);
        assert_eq!(ids(&again), ["1-0", "3-0", "4-0"]);
    }

    #[test]
    fn a_batch_its_subscriber_never_answered_comes_again_whole() {
        let mut lanes = lanes(&[&["do_schedule"], &["do_schedule"]]);
        let now = Instant::now();
        lanes.accept(vec![schedule("1-0"), schedule("2-0")]);
        let mut batches = lanes.ready(now);
        let answered = batches.remove(1);
        let lost = batches.remove(0);
        let settled = lanes.settle(1, answered.sent, &Outcome::Handled, now, PAUSE);
        assert!(
            settled.handled.is_empty(),
            "the other subscriber still has them"
        );
        let settled = lanes.settle(0, lost.sent, &Outcome::Lost, now, PAUSE);
        assert_eq!(settled.retried, 2);
        let again = lanes.ready(now + PAUSE);
        assert_eq!(again.len(), 1);
        assert_eq!(ids(&again[0]), ["1-0", "2-0"]);
        let settled = lanes.settle(0, again[0].sent.clone(), &Outcome::Handled, now, PAUSE);
        assert_eq!(settled.handled, ["1-0", "2-0"]);
        assert_eq!(lanes.held(), 0);
    }
}
