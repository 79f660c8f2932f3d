//! `POST /session/{name}` (execute) and the execute stream: the request as the original
//! validates it, and the agent's result in the reply shape of the API version.

use serde_json::{Value as Json, json};

use super::error::InteractionError;
use crate::wire::Value;

/// Modes the REST execute accepts (`complete` is answered with completions).
const MODES: [&str; 5] = ["query", "batch", "complete", "continue", "input"];

/// A validated execute request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    pub run_id: Option<String>,
    pub mode: String,
    pub code: String,
    pub opts: Json,
}

fn bad(text: &str) -> InteractionError {
    InteractionError::BadParameter(text.to_owned())
}

impl ExecuteRequest {
    /// Reads the body as the original: API v1 is always a query with an optional `runId`;
    /// v2+ needs `runId` (may be null), a known `mode`, and a run id to continue or give input.
    /// A missing run id of v1 is `fresh_run_id`.
    pub fn parse(
        body: &Json,
        api_major: u32,
        fresh_run_id: impl FnOnce() -> String,
    ) -> Result<ExecuteRequest, InteractionError> {
        let Some(params) = body.as_object() else {
            return Err(bad("the body must be a JSON object"));
        };
        let text = |key: &str| match params.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(InteractionError::BadParameter(format!(
                "{key} must be a string"
            ))),
        };
        if api_major == 1 {
            return Ok(ExecuteRequest {
                run_id: Some(text("runId")?.unwrap_or_else(fresh_run_id)),
                mode: "query".into(),
                code: text("code")?.unwrap_or_default(),
                opts: json!({}),
            });
        }
        if !params.contains_key("runId") {
            return Err(bad("runId is missing!"));
        }
        let run_id = text("runId")?;
        let mode = text("mode")?
            .filter(|mode| !mode.is_empty())
            .ok_or_else(|| bad("mode is missing or empty!"))?;
        if !MODES.contains(&mode.as_str()) {
            return Err(bad("mode has an invalid value."));
        }
        if matches!(mode.as_str(), "continue" | "input") && run_id.is_none() {
            return Err(bad("continuation requires explicit run ID"));
        }
        let opts = match params.get("options") {
            None | Some(Json::Null) => json!({}),
            Some(options @ Json::Object(_)) => options.clone(),
            Some(_) => return Err(bad("options must be an object")),
        };
        Ok(ExecuteRequest {
            run_id,
            mode,
            code: text("code")?.unwrap_or_default(),
            opts,
        })
    }
}

/// The agent's `console` (a list of `[stream, text]`); a kernel runner that reports none (the
/// dummy agent's fake runner) gives an empty list, which every client iterates without error.
fn console(raw: &Value) -> Json {
    match raw.get("console") {
        Some(Value::Array(records)) => Value::Array(records.clone()).to_json(),
        _ => json!([]),
    }
}

fn field(raw: &Value, key: &str) -> Json {
    raw.get(key).map_or(Json::Null, Value::to_json)
}

/// `resp["result"]` of REST execute for the agent's reply `raw` (nil: the kernel went away,
/// which the original reports as finished with exit code 130).
pub fn execute_result(raw: &Value, run_id: Option<&str>, api_major: u32) -> Json {
    if raw.is_nil() {
        return json!({
            "status": "finished", "runId": run_id, "exitCode": 130, "options": {},
            "files": [], "console": [],
        });
    }
    let mut result = json!({
        "status": field(raw, "status"),
        "runId": field(raw, "runId"),
        "exitCode": field(raw, "exitCode"),
        "options": field(raw, "options"),
        "files": field(raw, "files"),
    });
    if api_major == 1 {
        for key in ["stdout", "stderr", "media", "html"] {
            result[key] = field(raw, key);
        }
    } else {
        result["console"] = console(raw);
    }
    result
}

/// One message of the execute stream for the agent's reply `raw`.
pub fn stream_message(raw: &Value) -> Json {
    json!({
        "status": field(raw, "status"),
        "console": console(raw),
        "exitCode": field(raw, "exitCode"),
        "options": field(raw, "options"),
        "files": field(raw, "files"),
    })
}

/// A random run id: 16 hex digits, as `secrets.token_hex(8)`.
pub fn fresh_run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_as_the_original_checks_them() {
        let fresh = || "r".to_owned();
        let ok = ExecuteRequest::parse(
            &json!({"runId": null, "mode": "query", "code": "print(1)"}),
            4,
            fresh,
        )
        .unwrap();
        assert_eq!(ok.run_id, None);
        assert_eq!(ok.opts, json!({}));
        for (body, message) in [
            (json!({"mode": "query"}), "runId is missing!"),
            (json!({"runId": null}), "mode is missing or empty!"),
            (
                json!({"runId": null, "mode": "x"}),
                "mode has an invalid value.",
            ),
            (
                json!({"runId": null, "mode": "continue"}),
                "continuation requires explicit run ID",
            ),
        ] {
            let error = ExecuteRequest::parse(&body, 4, fresh).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        let legacy = ExecuteRequest::parse(&json!({"code": "1"}), 1, fresh).unwrap();
        assert_eq!(legacy.run_id.as_deref(), Some("r"));
        assert_eq!(fresh_run_id().len(), 16);
    }

    #[test]
    fn results_take_the_shape_of_the_api_version() {
        let raw = Value::map_of([
            ("runId", Value::str("r1")),
            ("status", Value::str("finished")),
            ("exitCode", Value::Int(0)),
            (
                "console",
                Value::Array(vec![Value::Array(vec![
                    Value::str("stdout"),
                    Value::str("1\n"),
                ])]),
            ),
        ]);
        let result = execute_result(&raw, Some("r1"), 4);
        assert_eq!(result["console"], json!([["stdout", "1\n"]]));
        assert_eq!(result["exitCode"], 0);
        assert!(result.get("stdout").is_none());
        let gone = execute_result(&Value::Nil, Some("r1"), 4);
        assert_eq!(gone["exitCode"], 130);
        // The dummy agent's fake runner: no console at all.
        let dummy = Value::map_of([("status", Value::str("finished")), ("runId", Value::Nil)]);
        assert_eq!(stream_message(&dummy)["console"], json!([]));
    }
}
