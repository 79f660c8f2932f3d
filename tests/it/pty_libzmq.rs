//! The terminal's keystroke publisher against libzmq, the ZeroMQ of the real kernel runner:
//! a pyzmq 26.x SUB from the agent's venv, bound and subscribed as the kernel runner's
//! `TerminalRunner` binds its stdin socket, receives every message the manager's own ZMTP
//! writer sends, in order.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bai_actors::interaction::stdin_publisher::StdinPublisher;

use crate::sched_support::agent_python;

/// Binds a SUB like `TerminalRunner`, prints its port, then prints each message it receives
/// until `done`.
const KERNEL_SIDE: &str = r#"
import sys, zmq
ctx = zmq.Context()
sock = ctx.socket(zmq.SUB)
port = sock.bind_to_random_port("tcp://127.0.0.1")
sock.setsockopt(zmq.SUBSCRIBE, b"")
sock.setsockopt(zmq.RCVTIMEO, 60000)
print(port, flush=True)
while True:
    data = sock.recv()
    print(data.decode(), flush=True)
    if data == b"done":
        break
"#;

#[tokio::test]
async fn keystrokes_reach_a_libzmq_sub_as_the_kernel_runner_binds_it() {
    let mut kernel = Command::new(agent_python())
        .arg("-c")
        .arg(KERNEL_SIDE)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the agent's python with pyzmq");
    let mut lines = BufReader::new(kernel.stdout.take().expect("piped stdout")).lines();
    let port = lines.next().and_then(Result::ok).expect("the SUB's port");
    let mut publisher =
        StdinPublisher::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10))
            .await
            .expect("the ZMTP handshake with libzmq");
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // A SUB drops messages until the publisher has its subscription, as with libzmq's PUB:
    // probe until the kernel side reads one.
    let mut subscribed = false;
    for _ in 0..600 {
        publisher.send(b"probe").await.expect("sending a probe");
        if let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(50), lines_rx.recv()).await
        {
            assert_eq!(line, "probe");
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "libzmq's SUB never received a probe");
    for keys in ["ls -al", "whoami", "done"] {
        publisher.send(keys.as_bytes()).await.expect("sending keys");
    }
    let mut keys = Vec::new();
    while let Some(line) = lines_rx.recv().await {
        if line != "probe" {
            keys.push(line);
        }
    }
    let _ = kernel.wait();
    let _ = reader.join();
    assert_eq!(keys, vec!["ls -al", "whoami", "done"]);
}
