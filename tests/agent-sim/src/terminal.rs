//! A fake kernel runner's terminal, for agents made with [`crate::SimAgent::with_terminals`]:
//! as the real `TerminalRunner`, a SUB socket bound on the stdin port (subscribed to
//! everything) and a PUB socket bound on the stdout port, here on free loopback ports. What
//! arrives on stdin comes back on stdout behind [`ECHO_PREFIX`], so a test sees keystrokes go
//! in and output come out. Dropping the [`Terminal`] closes both sockets.

use bytes::Bytes;
use zeromq::{PubSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

use crate::SimError;

/// What the fake terminal puts before each echoed input.
pub const ECHO_PREFIX: &[u8] = b"echo: ";

/// One running fake terminal.
#[derive(Debug)]
pub struct Terminal {
    pub stdin_port: u16,
    pub stdout_port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bound_port(endpoint: &zeromq::Endpoint) -> Result<u16, SimError> {
    match endpoint {
        zeromq::Endpoint::Tcp(_, port) => Ok(*port),
        other => Err(SimError::Rpc(format!(
            "unexpected terminal endpoint {other}"
        ))),
    }
}

/// Binds both sockets on `127.0.0.1` and starts echoing.
pub async fn start_terminal() -> Result<Terminal, SimError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: zeromq::ZmqError| SimError::Rpc(format!("{what}: {e}"))
    };
    let mut stdin = SubSocket::new();
    let stdin_port = bound_port(
        &stdin
            .bind("tcp://127.0.0.1:0")
            .await
            .map_err(failed("binding the terminal's stdin"))?,
    )?;
    stdin
        .subscribe("")
        .await
        .map_err(failed("subscribing the terminal's stdin"))?;
    let mut stdout = PubSocket::new();
    let stdout_port = bound_port(
        &stdout
            .bind("tcp://127.0.0.1:0")
            .await
            .map_err(failed("binding the terminal's stdout"))?,
    )?;
    let task = tokio::spawn(async move {
        loop {
            let message = match stdin.recv().await {
                Ok(message) => message,
                // A manager went away; the next one connects again.
                Err(zeromq::ZmqError::NoMessage) => return,
                Err(_) => continue,
            };
            let Some(data) = message.get(0) else { continue };
            let mut echoed = ECHO_PREFIX.to_vec();
            echoed.extend_from_slice(data);
            if stdout
                .send(ZmqMessage::from(Bytes::from(echoed)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Terminal {
        stdin_port,
        stdout_port,
        task,
    })
}
