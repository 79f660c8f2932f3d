//! Fault injection for the supervision tests: a message every supervised actor handles by
//! stopping (it comes back through its supervisor) or panicking (the worker exits).
//!
//! Nothing on the API sends it. The worker only sends it from its debug hook, which exists when
//! `[debug] enabled = true` and the environment names the actor (see the worker's
//! `fault_injection` module), i.e. only when the operator of the process asks for it.

use actix::prelude::*;

/// What an actor should do to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum InjectFault {
    /// `ctx.stop()`: the supervisor restarts the actor on the same mailbox.
    Stop,
    /// A panic inside the handler: the actor's mailbox closes for good.
    Panic,
}

/// Applies `fault` to the actor of `ctx`; the body of every actor's `Handler<InjectFault>`.
pub fn apply<A>(actor: &'static str, fault: InjectFault, ctx: &mut A::Context)
where
    A: Actor,
    A::Context: ActorContext,
{
    match fault {
        InjectFault::Stop => ctx.stop(),
        InjectFault::Panic => panic!("fault injection: {actor} panics"),
    }
}

/// Implements `Handler<InjectFault>` for an actor with the given registry name.
#[macro_export]
macro_rules! handle_injected_faults {
    ($actor:ty, $name:expr) => {
        impl ::actix::Handler<$crate::supervision::InjectFault> for $actor {
            type Result = ();

            fn handle(&mut self, fault: $crate::supervision::InjectFault, ctx: &mut Self::Context) {
                $crate::supervision::fault::apply::<Self>($name, fault, ctx);
            }
        }
    };
}
