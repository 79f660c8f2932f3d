//! The façade's edge of the worker's session-event feed
//! ([`crate::event_bus::session_feed`]): a subscription, or the problem a route answers when
//! there is none.

use actix::Addr;
use actix_web::web;

use crate::event_bus::session_feed::{self, SessionEventFeed, SessionEvents};
use crate::facade::problem::Problem;

/// The feed as the worker registers it (`web::Data<Addr<SessionEventFeed>>`).
pub type FeedData = Option<web::Data<Addr<SessionEventFeed>>>;

/// A receiver of every session and kernel event from now on, or a 500 with `failure` as its
/// message (the cause is logged for the operator).
pub async fn subscribe(
    feed: FeedData,
    log: &slog::Logger,
    failure: &str,
) -> Result<SessionEvents, Problem> {
    let Some(feed) = feed else {
        slog::error!(log, "the worker runs no session event feed"; "failed" => failure);
        return Err(Problem::internal(failure.to_owned()));
    };
    session_feed::subscribe(&feed).await.map_err(|error| {
        slog::error!(log, "cannot subscribe to the session event feed";
            "error" => %error, "failed" => failure);
        Problem::internal(failure.to_owned())
    })
}
