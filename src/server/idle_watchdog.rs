//! Closes client connections that sit between requests for too long. actix-web times out
//! the head of a connection's first request only, so a keep-alive connection could trickle
//! its next head forever; see `bai_actors::facade::connection_activity` for how requests mark
//! a connection busy. The watchdog is one sleeping task per connection that wakes at the
//! connection's deadline and, if it is still idle, shuts the socket down (the connection's
//! handler then sees the end of the stream and drops it).

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use actix_web::dev::Extensions;
use bai_actors::facade::connection_activity::ConnectionActivity;
use tokio::time::{Instant, sleep_until};

/// Attaches a [`ConnectionActivity`] to a new connection and starts its watchdog. Plain TCP
/// only: a TLS connection's socket is not reachable here (its first head is still timed out
/// by actix, and the connection cap bounds the rest).
pub fn attach(io: &dyn Any, extensions: &mut Extensions, grace: Duration) {
    let Some(socket) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let activity = ConnectionActivity::new(grace);
    actix_web::rt::spawn(watch(Rc::downgrade(&activity), socket.as_raw_fd()));
    extensions.insert(activity);
}

/// Sleeps until the connection is due; ends when the connection is gone (its activity is
/// dropped with it), or after shutting down a connection idle past its grace.
async fn watch(activity: Weak<ConnectionActivity>, socket: RawFd) {
    loop {
        let Some(current) = activity.upgrade() else {
            return;
        };
        match current.next_check(Instant::now()) {
            Some(at) => {
                drop(current);
                sleep_until(at).await;
            }
            None => {
                // The activity is alive, so the connection and its socket are: the fd is
                // still this connection's.
                // SAFETY: shutdown(2) on a socket this process owns; it does not close it.
                unsafe {
                    libc::shutdown(socket, libc::SHUT_RDWR);
                }
                return;
            }
        }
    }
}
