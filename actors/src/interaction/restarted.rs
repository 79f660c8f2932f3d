//! Reading `restart_kernel`'s reply: the new container's id, REPL and terminal ports and
//! service ports, which the kernel row must then carry (the original's `restart_session`).

use bai_schema::queries::interaction::RestartedKernel;
use serde_json::Value as Json;

/// The columns to update from the reply (converted to JSON); keys the agent left out, or a
/// port that is not a valid number, keep the stored value.
pub fn restarted_kernel(reply: &Json) -> RestartedKernel {
    let port = |key: &str| {
        reply
            .get(key)
            .and_then(Json::as_i64)
            .filter(|port| (1..=65535).contains(port))
            .and_then(|port| i32::try_from(port).ok())
    };
    RestartedKernel {
        container_id: reply
            .get("container_id")
            .and_then(Json::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        repl_in_port: port("repl_in_port"),
        repl_out_port: port("repl_out_port"),
        stdin_port: port("stdin_port"),
        stdout_port: port("stdout_port"),
        service_ports: reply.get("service_ports").filter(|v| v.is_array()).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_reply_gives_the_new_ports_and_keeps_what_it_lacks() {
        let restarted = restarted_kernel(&json!({
            "id": "k", "container_id": "c0ffee", "repl_in_port": 30001,
            "repl_out_port": 30002, "stdin_port": 70000, "service_ports": [{"name": "jupyter"}],
        }));
        assert_eq!(restarted.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(restarted.repl_in_port, Some(30001));
        assert_eq!(restarted.repl_out_port, Some(30002));
        assert_eq!(restarted.stdin_port, None, "70000 is not a port");
        assert_eq!(restarted.stdout_port, None);
        assert_eq!(restarted.service_ports, Some(json!([{"name": "jupyter"}])));
        assert_eq!(restarted_kernel(&json!(null)), RestartedKernel::default());
    }
}
