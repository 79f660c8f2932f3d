//! API parameters as the original's `check_api_params` reads them: the JSON body when the
//! request has one (whatever the method), otherwise the query string as a flat map of strings.
//! Handlers then pick typed values by key and alias, the way trafaret schemas do; a bad value
//! gives 400 `invalid-api-params` "Input validation error" with `data` naming the key.
//!
//! A NUL character anywhere in the parameters (a key or a string value, at any depth) is
//! refused here, for every route at once: PostgreSQL cannot store NUL in text, so it would
//! otherwise fail deep inside a query with a 500.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde_json::{Map, Value};

use super::json_nesting::{MAX_JSON_NESTING, first_too_deep, too_deep_message};
use super::problem::{Problem, ProblemKind};

/// The largest request body read as parameters. Session creation bodies are a few kB; 1 MiB
/// leaves room for bootstrap scripts and startup commands while bounding memory per request.
pub const MAX_PARAMS_BODY_BYTES: usize = 1024 * 1024;

/// The parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct ApiParams {
    values: Map<String, Value>,
    /// The query string, also when the body held the parameters.
    query: Map<String, Value>,
}

/// The 400 reply for a parameter that does not validate.
pub fn invalid_param(key: &str, reason: impl Into<String>) -> Problem {
    let mut data = Map::new();
    data.insert(key.to_owned(), Value::String(reason.into()));
    Problem::new(ProblemKind::InvalidApiParameters)
        .with_msg("Input validation error")
        .with_data(Value::Object(data))
}

fn query_map(query: &str) -> Map<String, Value> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
        .collect()
}

/// The reason given for a NUL character in a string parameter.
pub const NUL_REASON: &str = "contains a NUL character";

/// The reason given for a NUL character in a key of an object parameter.
pub const NUL_KEY_REASON: &str = "a key contains a NUL character";

/// Where the first NUL character is: the dotted key path (`config.environ`, `files.2`) of the
/// string holding it, or of the object with such a key (`_` for the top level), and the reason.
pub fn find_nul(values: &Map<String, Value>) -> Option<(String, &'static str)> {
    fn in_value(value: &Value, path: &str) -> Option<(String, &'static str)> {
        match value {
            Value::String(text) if text.contains('\0') => Some((path.to_owned(), NUL_REASON)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(index, item)| in_value(item, &format!("{path}.{index}"))),
            Value::Object(object) => in_object(object, path),
            _ => None,
        }
    }
    fn in_object(object: &Map<String, Value>, path: &str) -> Option<(String, &'static str)> {
        if object.keys().any(|key| key.contains('\0')) {
            return Some((path.to_owned(), NUL_KEY_REASON));
        }
        object.iter().find_map(|(key, value)| {
            let inner = if path == "_" {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            in_value(value, &inner)
        })
    }
    in_object(values, "_")
}

fn refuse_nul(values: &Map<String, Value>) -> Result<(), Problem> {
    match find_nul(values) {
        Some((path, reason)) => Err(invalid_param(&path, reason)),
        None => Ok(()),
    }
}

impl ApiParams {
    /// Parameters from a body (possibly empty) and a query string.
    pub fn from_parts(body: &[u8], query: &str) -> Result<ApiParams, Problem> {
        let query = query_map(query);
        refuse_nul(&query)?;
        if body.is_empty() {
            return Ok(ApiParams {
                values: query.clone(),
                query,
            });
        }
        if first_too_deep(body, MAX_JSON_NESTING).is_some() {
            return Err(Problem::invalid_params(too_deep_message(MAX_JSON_NESTING)));
        }
        let parsed: Value =
            serde_json::from_slice(body).map_err(|_| Problem::invalid_params("Malformed body"))?;
        let Value::Object(values) = parsed else {
            return Err(Problem::new(ProblemKind::InvalidApiParameters)
                .with_msg("Input validation error")
                .with_data(Value::String("value is not a dict".into())));
        };
        // JSON can only carry a NUL as the escape `\u0000`: without one, skip the walk.
        if body.windows(6).any(|window| window == b"\\u0000") {
            refuse_nul(&values)?;
        }
        Ok(ApiParams { values, query })
    }

    /// Parameters from a JSON object (for tests and internal callers).
    pub fn from_object(values: Map<String, Value>) -> ApiParams {
        ApiParams {
            values,
            query: Map::new(),
        }
    }

    /// Every parameter (the body's when it had any, else the query string's).
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The query string parameters alone.
    pub fn query(&self) -> &Map<String, Value> {
        &self.query
    }

    /// The raw value of the first key of `keys` that is present.
    pub fn raw(&self, keys: &[&str]) -> Option<(&str, &Value)> {
        keys.iter()
            .find_map(|key| self.values.get_key_value(*key))
            .map(|(key, value)| (key.as_str(), value))
    }

    /// Whether any of `keys` is present.
    pub fn has(&self, keys: &[&str]) -> bool {
        self.raw(keys).is_some()
    }

    /// A string; `null` or absent gives `None`.
    pub fn opt_string(&self, keys: &[&str]) -> Result<Option<String>, Problem> {
        match self.raw(keys) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::String(text))) => Ok(Some(text.clone())),
            Some((key, _)) => Err(invalid_param(key, "value is not a string")),
        }
    }

    /// A string that must be there.
    pub fn string(&self, keys: &[&str]) -> Result<String, Problem> {
        self.opt_string(keys)?
            .ok_or_else(|| invalid_param(keys[0], "is required"))
    }

    /// trafaret's `ToBool`: booleans and their usual spellings (`"true"`, `"yes"`, `"1"`, …).
    pub fn to_bool(&self, keys: &[&str], default: bool) -> Result<bool, Problem> {
        let Some((key, value)) = self.raw(keys) else {
            return Ok(default);
        };
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
                "f" | "false" | "n" | "no" | "off" | "0" | "none" => Ok(false),
                _ => Err(invalid_param(key, "value can't be converted to Bool")),
            },
            _ => Err(invalid_param(key, "value can't be converted to Bool")),
        }
    }

    /// trafaret's `ToInt`: integers and integer strings, at least `min`.
    pub fn to_int(&self, keys: &[&str], default: i64, min: i64) -> Result<i64, Problem> {
        let Some((key, value)) = self.raw(keys) else {
            return Ok(default);
        };
        let number = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| invalid_param(key, "value can't be converted to int"))?;
        if number < min {
            return Err(invalid_param(key, format!("value is less than {min}")));
        }
        Ok(number)
    }

    /// An object (`Mapping`), `null`/absent giving `None`.
    pub fn opt_object(&self, keys: &[&str]) -> Result<Option<&Map<String, Value>>, Problem> {
        match self.raw(keys) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Object(object))) => Ok(Some(object)),
            Some((key, _)) => Err(invalid_param(key, "value is not a dict")),
        }
    }

    /// A list, `null`/absent giving `None`.
    pub fn opt_list(&self, keys: &[&str]) -> Result<Option<&Vec<Value>>, Problem> {
        match self.raw(keys) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Array(list))) => Ok(Some(list)),
            Some((key, _)) => Err(invalid_param(key, "value is not a list")),
        }
    }
}

impl FromRequest for ApiParams {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<ApiParams, Problem>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = request.query_string().to_owned();
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    Problem::new(ProblemKind::GenericBadRequest)
                        .with_msg(format!("cannot read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > MAX_PARAMS_BODY_BYTES {
                    return Err(Problem::invalid_params(format!(
                        "the request body is larger than {MAX_PARAMS_BODY_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            ApiParams::from_parts(&body, &query)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_wins_over_the_query_and_an_empty_body_means_the_query() {
        let params = ApiParams::from_parts(br#"{"group": "g1"}"#, "group=g2").unwrap();
        assert_eq!(params.string(&["group"]).unwrap(), "g1");
        let params = ApiParams::from_parts(b"", "group=g2&forced=true").unwrap();
        assert_eq!(params.string(&["group"]).unwrap(), "g2");
        assert!(params.to_bool(&["forced"], false).unwrap());
    }

    #[test]
    fn bodies_nesting_too_deep_are_refused_before_parsing() {
        let body = format!(r#"{{"config": {}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let problem = ApiParams::from_parts(body.as_bytes(), "").unwrap_err();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(
            problem.body()["msg"],
            "the JSON body nests objects and arrays more than 32 levels deep"
        );
    }

    #[test]
    fn malformed_bodies_and_bad_values_name_the_problem() {
        let problem = ApiParams::from_parts(b"{nope", "").unwrap_err();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(problem.body()["msg"], "Malformed body");
        let params =
            ApiParams::from_parts(br#"{"maxWaitSeconds": "x", "forced": "maybe"}"#, "").unwrap();
        let problem = params.to_int(&["maxWaitSeconds"], 0, 0).unwrap_err();
        assert_eq!(
            problem.body()["data"]["maxWaitSeconds"],
            "value can't be converted to int"
        );
        assert!(params.to_bool(&["forced"], false).is_err());
        let problem = params.string(&["name"]).unwrap_err();
        assert_eq!(problem.body()["data"]["name"], "is required");
    }

    #[test]
    fn a_nul_anywhere_is_refused_naming_the_key() {
        let problem =
            ApiParams::from_parts(br#"{"username": "a\u0000b", "password": "x"}"#, "").unwrap_err();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(problem.body()["data"]["username"], NUL_REASON);
        let problem = ApiParams::from_parts(
            br#"{"config": {"environ": {"A": "1", "B\u0000": "2"}}, "files": ["x", "y\u0000"]}"#,
            "",
        )
        .unwrap_err();
        assert_eq!(problem.body()["data"]["config.environ"], NUL_KEY_REASON);
        let problem = ApiParams::from_parts(br#"{"files": ["x", "y\u0000"]}"#, "").unwrap_err();
        assert_eq!(problem.body()["data"]["files.1"], NUL_REASON);
        let problem = ApiParams::from_parts(b"", "group=%00").unwrap_err();
        assert_eq!(problem.body()["data"]["group"], NUL_REASON);
        // An escaped backslash followed by "u0000" is just text.
        assert!(ApiParams::from_parts(br#"{"name": "\\u0000"}"#, "").is_ok());
    }

    #[test]
    fn aliases_are_tried_in_order() {
        let params =
            ApiParams::from_parts(br#"{"clientSessionToken": "s1", "clusterSize": "2"}"#, "")
                .unwrap();
        assert_eq!(
            params.string(&["name", "clientSessionToken"]).unwrap(),
            "s1"
        );
        assert_eq!(
            params
                .to_int(&["cluster_size", "clusterSize"], 1, 1)
                .unwrap(),
            2
        );
        assert_eq!(params.to_int(&["missing"], 7, 0).unwrap(), 7);
    }
}
