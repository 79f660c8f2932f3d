//! The watchdog: probes each watched actor's mailbox and reports the first one that closed.
//! A supervised actor's mailbox stays open across its restarts, so a closed one means the actor
//! died (panicked) or its supervisor gave up: the worker then exits for a clean restart.

use std::time::Duration;

use actix::{Actor, Addr, Handler, Recipient};

use super::InjectFault;

/// How often mailboxes are probed: a dead actor is noticed within this long.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

type Probe = Box<dyn Fn() -> bool + Send>;

/// The actors of one worker whose death ends the worker.
#[derive(Default)]
pub struct Watchdog {
    probes: Vec<(&'static str, Probe)>,
    faults: Vec<(&'static str, Recipient<InjectFault>)>,
}

impl Watchdog {
    /// Watches the actor behind `addr` under `name` (and registers it for restart counts).
    pub fn watch<A>(&mut self, name: &'static str, addr: &Addr<A>)
    where
        A: Actor<Context = actix::Context<A>> + Handler<InjectFault>,
    {
        super::register(name);
        self.faults.push((name, addr.clone().recipient()));
        let addr = addr.clone();
        self.probes.push((name, Box::new(move || addr.connected())));
    }

    /// Where to send an injected fault for the watched actor `name`.
    pub fn fault_target(&self, name: &str) -> Option<Recipient<InjectFault>> {
        self.faults
            .iter()
            .find(|(watched, _)| *watched == name)
            .map(|(_, recipient)| recipient.clone())
    }

    /// The names of the watched actors.
    pub fn watched(&self) -> Vec<&'static str> {
        self.probes.iter().map(|(name, _)| *name).collect()
    }

    /// The first watched actor whose mailbox is closed, if any.
    pub fn dead(&self) -> Option<&'static str> {
        self.probes
            .iter()
            .find(|(_, alive)| !alive())
            .map(|(name, _)| *name)
    }

    /// Resolves with the name of the first actor found dead; never if all stay alive.
    pub async fn first_death(mut self) -> &'static str {
        // Holding recipients would keep nothing alive (a dead mailbox stays dead), but the
        // probes alone are what is needed from here on.
        self.faults.clear();
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            probe.tick().await;
            if let Some(name) = self.dead() {
                return name;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::prelude::*;

    use super::*;
    use crate::supervision::{InjectFault, record_restart, restarts_of};

    struct Fragile;

    impl Actor for Fragile {
        type Context = Context<Self>;
    }

    impl Supervised for Fragile {
        fn restarting(&mut self, _ctx: &mut Context<Self>) {
            record_restart("test-fragile");
        }
    }

    crate::handle_injected_faults!(Fragile, "test-fragile");

    #[derive(Message)]
    #[rtype(result = "u8")]
    struct Ping;

    impl Handler<Ping> for Fragile {
        type Result = u8;

        fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u8 {
            1
        }
    }

    #[actix::test]
    async fn a_stopped_supervised_actor_restarts_on_its_mailbox_and_a_panicked_one_is_dead() {
        let addr = Supervisor::start(|_| Fragile);
        let mut watchdog = Watchdog::default();
        watchdog.watch("test-fragile", &addr);
        addr.send(InjectFault::Stop).await.unwrap();
        // The same address answers after the restart.
        assert_eq!(addr.send(Ping).await.unwrap(), 1);
        assert_eq!(restarts_of("test-fragile"), 1);
        assert_eq!(watchdog.dead(), None);

        let _ = addr.send(InjectFault::Panic).await;
        assert!(addr.send(Ping).await.is_err());
        assert_eq!(watchdog.first_death().await, "test-fragile");
    }
}
