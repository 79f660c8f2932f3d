//! The supervision tests' way into a running worker: with `[debug] enabled = true` and
//! `BAI_FAULT_INJECTION=<actor>` in the worker's environment, SIGUSR1 makes that actor stop
//! (its supervisor restarts it) and SIGUSR2 makes it panic (the worker exits and is restarted).
//!
//! Both conditions are the operator's (the config file and the process environment); nothing a
//! client sends reaches it. Without them no handler is installed and the signals keep their
//! default action.

use actix::Recipient;
use bai_actors::supervision::{InjectFault, Watchdog};
use slog::{info, warn};

/// The environment variable naming the actor faults are injected into.
pub const FAULT_INJECTION_ENV: &str = "BAI_FAULT_INJECTION";

/// Installs the signal handlers when the debug config and the environment ask for them.
pub fn install(debug_enabled: bool, watchdog: &Watchdog, log: &slog::Logger) {
    let Ok(actor) = std::env::var(FAULT_INJECTION_ENV) else {
        return;
    };
    if !debug_enabled {
        warn!(
            log,
            "{FAULT_INJECTION_ENV} is ignored unless [debug] enabled = true"
        );
        return;
    }
    let Some(target) = watchdog.fault_target(&actor) else {
        warn!(log, "{FAULT_INJECTION_ENV} names no supervised actor";
            "actor" => &actor, "actors" => watchdog.watched().join(","));
        return;
    };
    // The handlers are in place before the line that says so: a signal sent on seeing it must
    // not find the default action (which ends the worker).
    use tokio::signal::unix::{SignalKind, signal};
    let (stop, panic) = match (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(stop), Ok(panic)) => (stop, panic),
        (Err(error), _) | (_, Err(error)) => {
            warn!(log, "cannot install the fault injection signal handlers"; "error" => %error);
            return;
        }
    };
    info!(log, "fault injection armed: SIGUSR1 stops, SIGUSR2 panics"; "actor" => &actor);
    actix_web::rt::spawn(relay_signals(target, stop, panic, log.clone()));
}

async fn relay_signals(
    target: Recipient<InjectFault>,
    mut stop: tokio::signal::unix::Signal,
    mut panic: tokio::signal::unix::Signal,
    log: slog::Logger,
) {
    loop {
        let fault = tokio::select! {
            _ = stop.recv() => InjectFault::Stop,
            _ = panic.recv() => InjectFault::Panic,
        };
        warn!(log, "injecting a fault"; "fault" => ?fault);
        target.do_send(fault);
    }
}
