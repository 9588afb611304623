//! Decoding Celery protocol messages (v2, and v1 bodies) as Celery 5 writes them to Redis.
//! Pure functions, no I/O: this is what the fuzz target exercises.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Why a message cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a JSON envelope at all.
    #[error("message is not a Celery JSON envelope: {0}")]
    NotAnEnvelope(String),
    /// A serializer other than JSON (pickle, msgpack, yaml).
    #[error("unsupported serializer {0:?}: only application/json is accepted")]
    UnsupportedSerializer(String),
    /// The body does not decode.
    #[error("body does not decode: {0}")]
    BadBody(String),
    /// No task name or id.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A time header that does not parse.
    #[error("header {0} is not a time: {1:?}")]
    BadTime(&'static str, String),
}

/// One Celery task message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct CeleryTask {
    /// The task's id (`headers.id`).
    pub id: String,
    /// The full task name (`analytics.tasks.persist_anonymous_session`).
    pub task: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Run no earlier than this.
    pub eta: Option<DateTime<Utc>>,
    /// Do not run after this.
    pub expires: Option<DateTime<Utc>>,
    /// Retries already made (`headers.retries`).
    pub retries: u32,
    /// Restored after a worker lost it (`headers.redelivered`).
    pub redelivered: bool,
    /// The producer asked for no result (`headers.ignore_result`).
    pub ignore_result: bool,
    /// The task's time limit (`headers.timelimit`, `[soft, hard]` seconds from `soft_time_limit`
    /// and `time_limit`): the hard limit, else the soft one (a job here cannot be warned before
    /// it is cancelled); `None` when neither is set.
    pub time_limit: Option<std::time::Duration>,
}

impl CeleryTask {
    /// The job name: the task name's last dotted segment.
    pub fn job_name(&self) -> &str {
        self.task.rsplit('.').next().unwrap_or(&self.task)
    }

    /// Positional and keyword arguments merged into one object, positional ones named by `fields`.
    pub fn arguments(&self, fields: &[&str]) -> Result<Value, String> {
        if self.args.len() > fields.len() {
            return Err(format!(
                "{} takes {} positional argument(s), {} given",
                self.task,
                fields.len(),
                self.args.len()
            ));
        }
        let mut out = Map::new();
        for (name, v) in fields.iter().zip(&self.args) {
            out.insert((*name).to_owned(), v.clone());
        }
        for (k, v) in &self.kwargs {
            if out.contains_key(k) {
                return Err(format!(
                    "{} got multiple values for argument {k:?}",
                    self.task
                ));
            }
            out.insert(k.clone(), v.clone());
        }
        Ok(Value::Object(out))
    }
}

fn time(header: &'static str, v: Option<&Value>) -> Result<Option<DateTime<Utc>>, EnvelopeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => domain::documents::parse_time(s)
            .map(Some)
            .ok_or_else(|| EnvelopeError::BadTime(header, s.clone())),
        Some(other) => Err(EnvelopeError::BadTime(header, other.to_string())),
    }
}

/// Decode one message as found in a Celery queue list.
pub fn decode(raw: &[u8]) -> Result<CeleryTask, EnvelopeError> {
    let env: Value =
        serde_json::from_slice(raw).map_err(|e| EnvelopeError::NotAnEnvelope(e.to_string()))?;
    decode_value(&env)
}

/// Decode a message already parsed as JSON.
pub fn decode_value(env: &Value) -> Result<CeleryTask, EnvelopeError> {
    let env = env
        .as_object()
        .ok_or_else(|| EnvelopeError::NotAnEnvelope("not a JSON object".into()))?;
    let content_type = env
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    if content_type != "application/json" {
        return Err(EnvelopeError::UnsupportedSerializer(
            content_type.to_owned(),
        ));
    }
    let empty = Map::new();
    let headers = env
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let props = env
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let body = env
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| EnvelopeError::BadBody("no body".into()))?;
    let body_bytes = match props.get("body_encoding").and_then(Value::as_str) {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| EnvelopeError::BadBody(format!("base64: {e}")))?,
        _ => body.as_bytes().to_vec(),
    };
    let body: Value =
        serde_json::from_slice(&body_bytes).map_err(|e| EnvelopeError::BadBody(e.to_string()))?;

    // Protocol v2: headers carry the task; body is [args, kwargs, embed]. Protocol v1: body is a dict.
    let (task, id, args, kwargs, eta, expires, retries) = match (headers.get("task"), &body) {
        (Some(task), Value::Array(parts)) => {
            let args = match parts.first() {
                Some(Value::Array(a)) => a.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(EnvelopeError::BadBody("args is not a list".into())),
            };
            let kwargs = match parts.get(1) {
                Some(Value::Object(k)) => k.clone(),
                None | Some(Value::Null) => Map::new(),
                Some(_) => return Err(EnvelopeError::BadBody("kwargs is not an object".into())),
            };
            (
                task.clone(),
                headers.get("id").cloned(),
                args,
                kwargs,
                headers.get("eta"),
                headers.get("expires"),
                headers.get("retries"),
            )
        }
        (None, Value::Object(b)) if b.contains_key("task") => {
            let args = b
                .get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let kwargs = b
                .get("kwargs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            (
                b["task"].clone(),
                b.get("id").cloned(),
                args,
                kwargs,
                b.get("eta"),
                b.get("expires"),
                b.get("retries"),
            )
        }
        (Some(_), _) => {
            return Err(EnvelopeError::BadBody(
                "protocol 2 body is not [args, kwargs, embed]".into(),
            ));
        }
        (None, _) => return Err(EnvelopeError::MissingHeader("task")),
    };
    let task = task
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or(EnvelopeError::MissingHeader("task"))?
        .to_owned();
    let id = id
        .as_ref()
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(EnvelopeError::MissingHeader("id"))?
        .to_owned();
    let redelivered = headers
        .get("redelivered")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || props
            .get("delivery_info")
            .and_then(|d| d.get("redelivered"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    Ok(CeleryTask {
        id,
        task,
        args,
        kwargs,
        eta: time("eta", eta)?,
        expires: time("expires", expires)?,
        retries: retries
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32,
        redelivered,
        ignore_result: headers
            .get("ignore_result")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        time_limit: time_limit(headers.get("timelimit")),
    })
}

/// `[soft, hard]` (numbers of seconds or nulls): the hard limit, else the soft one. Anything
/// that is not a positive finite number counts as unset.
fn time_limit(v: Option<&Value>) -> Option<std::time::Duration> {
    let parts = v?.as_array()?;
    let secs = |i: usize| {
        parts
            .get(i)
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
    };
    secs(1)
        .or_else(|| secs(0))
        .map(std::time::Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"body": "W1siZnAtM2YyYTljIl0sIHsic291cmNlIjogIm1pZGRsZXdhcmUifSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=",
 "content-encoding": "utf-8", "content-type": "application/json",
 "headers": {"lang": "py", "task": "analytics.tasks.persist_anonymous_session",
             "id": "211f1673-8632-46c4-8e9a-094989812ed3", "shadow": null, "eta": null, "expires": null,
             "group": null, "group_index": null, "retries": 0, "timelimit": [null, null]},
 "properties": {"correlation_id": "211f1673-8632-46c4-8e9a-094989812ed3", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0,
                "body_encoding": "base64", "delivery_tag": "e2372dc0-c08b-443a-a408-b7604d757674"}}"#;

    #[test]
    fn the_captured_celery_message_decodes() {
        let t = decode(SAMPLE.as_bytes()).unwrap();
        assert_eq!(t.job_name(), "persist_anonymous_session");
        assert_eq!(t.id, "211f1673-8632-46c4-8e9a-094989812ed3");
        let args = t.arguments(&["fingerprint"]).unwrap();
        assert_eq!(
            args,
            serde_json::json!({"fingerprint": "fp-3f2a9c", "source": "middleware"})
        );
        assert!(t.arguments(&[]).is_err());
        assert_eq!(t.time_limit, None);
        for (header, want) in [
            ("[30, 60]", Some(60.0)),
            ("[30, null]", Some(30.0)),
            ("[null, 2.5]", Some(2.5)),
            ("[-1, \"x\"]", None),
        ] {
            let msg = SAMPLE.replace(
                "\"timelimit\": [null, null]",
                &format!("\"timelimit\": {header}"),
            );
            let t = decode(msg.as_bytes()).unwrap();
            assert_eq!(t.time_limit.map(|d| d.as_secs_f64()), want, "{header}");
        }
    }

    #[test]
    fn other_serializers_and_garbage_are_refused_with_a_reason() {
        let pickle = SAMPLE.replace("application/json", "application/x-python-serialize");
        assert!(matches!(
            decode(pickle.as_bytes()),
            Err(EnvelopeError::UnsupportedSerializer(_))
        ));
        assert!(matches!(
            decode(b"garbage"),
            Err(EnvelopeError::NotAnEnvelope(_))
        ));
        let bad_body = SAMPLE.replace("W1siZnAt", "!!!!");
        assert!(matches!(
            decode(bad_body.as_bytes()),
            Err(EnvelopeError::BadBody(_))
        ));
    }
}
