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
///
/// A message as Celery 5 writes it (protocol 2, a JSON body, every header of the expected type)
/// decodes straight into the task, without a JSON tree of the whole envelope; anything else, or
/// anything that fast path does not take, is decoded by [`decode_value`], which also gives the
/// reason a message is refused. Both give the same result for every message (the fuzz target
/// `celery_envelope` and the tests below check it).
pub fn decode(raw: &[u8]) -> Result<CeleryTask, EnvelopeError> {
    if let Some(task) = typed::decode(raw) {
        return Ok(task);
    }
    let env: Value =
        serde_json::from_slice(raw).map_err(|e| EnvelopeError::NotAnEnvelope(e.to_string()))?;
    decode_value(&env)
}

/// The fast path of [`decode`]: the usual Celery 5 message decoded by typed structs. It answers
/// only when it is sure; `None` sends the message to the general decoder.
///
/// Two things keep its answers the general decoder's: a first pass ([`Valid`]) refuses any JSON
/// the general decoder's parse would refuse (the typed pass skips unknown keys without checking
/// their numbers, escapes, encoding or depth), and [`Obj`] takes only JSON objects where a
/// derived struct would also take an array.
mod typed {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;

    use base64::Engine as _;
    use serde::Deserialize;
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use super::CeleryTask;

    /// Any JSON value, checked as parsing it into a [`Value`] checks it (through
    /// `deserialize_any`: numbers in range, escapes, UTF-8, nesting depth), and kept nowhere.
    pub(super) struct Valid;

    impl<'de> Deserialize<'de> for Valid {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ValidVisitor)
        }
    }

    struct ValidVisitor;

    impl<'de> Visitor<'de> for ValidVisitor {
        type Value = Valid;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_unit<E>(self) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
            while seq.next_element::<Valid>()?.is_some() {}
            Ok(Valid)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
            while map.next_entry::<Valid, Valid>()?.is_some() {}
            Ok(Valid)
        }
    }

    /// `T` from a JSON object only.
    struct Obj<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = T;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(map))
                }
            }
            d.deserialize_map(V(PhantomData)).map(Obj)
        }
    }

    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        body: Cow<'a, str>,
        #[serde(rename = "content-type", borrow, default)]
        content_type: Option<Cow<'a, str>>,
        #[serde(borrow)]
        headers: Obj<Headers<'a>>,
        #[serde(borrow, default)]
        properties: Option<Obj<Properties<'a>>>,
    }

    #[derive(Deserialize)]
    struct Headers<'a> {
        task: String,
        id: String,
        #[serde(borrow, default)]
        eta: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        expires: Option<Cow<'a, str>>,
        #[serde(default)]
        retries: Option<u64>,
        #[serde(default)]
        redelivered: Option<bool>,
        #[serde(default)]
        ignore_result: Option<bool>,
        #[serde(default)]
        timelimit: Option<Vec<Option<f64>>>,
    }

    #[derive(Deserialize)]
    struct Properties<'a> {
        #[serde(borrow, default)]
        body_encoding: Option<Cow<'a, str>>,
        #[serde(default)]
        delivery_info: Option<Obj<DeliveryInfo>>,
    }

    #[derive(Deserialize)]
    struct DeliveryInfo {
        #[serde(default)]
        redelivered: Option<bool>,
    }

    /// Protocol 2's body: `[args, kwargs, embed]`.
    #[derive(Deserialize)]
    struct Body(
        Option<Vec<Value>>,
        Option<Map<String, Value>>,
        #[allow(dead_code)] Valid,
    );

    fn time(t: Option<&str>) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        match t {
            None => Some(None),
            Some(t) => domain::documents::parse_time(t).map(Some),
        }
    }

    pub(super) fn decode(raw: &[u8]) -> Option<CeleryTask> {
        serde_json::from_slice::<Valid>(raw).ok()?;
        let Obj(env) = serde_json::from_slice::<Obj<Envelope<'_>>>(raw).ok()?;
        if env
            .content_type
            .as_deref()
            .is_some_and(|c| c != "application/json")
        {
            return None;
        }
        let Obj(h) = env.headers;
        if h.task.is_empty() || h.id.is_empty() {
            return None;
        }
        let props = env.properties.map(|Obj(p)| p);
        let encoding = props.as_ref().and_then(|p| p.body_encoding.as_deref());
        let body: Body = match encoding {
            Some("base64") => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(env.body.trim())
                    .ok()?;
                serde_json::from_slice(&bytes).ok()?
            }
            _ => serde_json::from_str(&env.body).ok()?,
        };
        let redelivered = h.redelivered.unwrap_or(false)
            || props
                .as_ref()
                .and_then(|p| p.delivery_info.as_ref())
                .and_then(|Obj(d)| d.redelivered)
                .unwrap_or(false);
        let limit = h.timelimit.and_then(|parts| {
            let secs = |i: usize| {
                parts
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            };
            secs(1).or_else(|| secs(0))
        });
        Some(CeleryTask {
            id: h.id,
            task: h.task,
            args: body.0.unwrap_or_default(),
            kwargs: body.1.unwrap_or_default(),
            eta: time(h.eta.as_deref())?,
            expires: time(h.expires.as_deref())?,
            retries: h.retries.unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            redelivered,
            ignore_result: h.ignore_result.unwrap_or(false),
            time_limit: limit.map(std::time::Duration::from_secs_f64),
        })
    }
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

    /// `SAMPLE` with its base64 body replaced by `body` (JSON text, or any bytes).
    fn with_body(body: impl AsRef<[u8]>) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        SAMPLE.replace(
            "W1siZnAtM2YyYTljIl0sIHsic291cmNlIjogIm1pZGRsZXdhcmUifSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=",
            &encoded,
        )
    }

    #[test]
    fn the_typed_fast_path_decodes_as_the_general_decoder_does() {
        // The usual messages take the fast path (were it never taken, the comparisons below
        // would hold trivially).
        let usual = [
            SAMPLE.to_owned(),
            SAMPLE.replace(
                "\"eta\": null",
                "\"eta\": \"2026-11-26T15:06:00.962012+00:00\"",
            ),
            SAMPLE.replace("\"retries\": 0", "\"retries\": 3, \"ignore_result\": true"),
            SAMPLE.replace("\"timelimit\": [null, null]", "\"timelimit\": [30, 60.5]"),
            SAMPLE.replace(
                "\"routing_key\": \"celery\"",
                "\"routing_key\": \"celery\", \"redelivered\": true",
            ),
            with_body(r#"[["fp-1", 2], {"k": {"deep": [1, null]}}, {"chain": null}]"#),
            with_body(r#"[null, null, null]"#),
        ];
        for msg in &usual {
            let fast = typed::decode(msg.as_bytes());
            assert!(fast.is_some(), "fast path not taken: {msg}");
            let general: Value = serde_json::from_slice(msg.as_bytes()).unwrap();
            assert_eq!(fast.map(Ok), Some(decode_value(&general)), "{msg}");
        }
        assert!(decode(usual[4].as_bytes()).unwrap().redelivered);
        assert_eq!(decode(usual[2].as_bytes()).unwrap().retries, 3);
        // Unusual ones: whichever path answers, the answer is the general decoder's.
        // (text in SAMPLE, its replacement)
        let edits = [
            ("\"retries\": 0", "\"retries\": -1"),
            ("\"retries\": 0", "\"retries\": 1.5"),
            ("\"retries\": 0", "\"retries\": 0, \"retries\": 7"),
            ("\"timelimit\": [null, null]", "\"timelimit\": [\"x\", 5]"),
            ("\"timelimit\": [null, null]", "\"timelimit\": 5"),
            ("\"eta\": null", "\"eta\": \"soon\""),
            ("\"eta\": null", "\"eta\": 5"),
            (
                "\"id\": \"211f1673-8632-46c4-8e9a-094989812ed3\", \"shadow\"",
                "\"id\": \"\", \"shadow\"",
            ),
            (
                "\"task\": \"analytics.tasks.persist_anonymous_session\"",
                "\"task\": null",
            ),
            (
                "\"content-type\": \"application/json\"",
                "\"content-type\": 7",
            ),
            ("\"application/json\"", "\"application/x-yaml\""),
            ("\"body_encoding\": \"base64\"", "\"body_encoding\": 1"),
            ("\"delivery_info\": {", "\"delivery_info\": \"x\", \"d\": {"),
        ];
        let mut unusual: Vec<String> = edits.iter().map(|(a, b)| SAMPLE.replace(a, b)).collect();
        unusual.extend([
            SAMPLE.replace("\"redelivered\"", "\"x\"").replace(
                "\"retries\": 0",
                "\"retries\": 0, \"redelivered\": \"yes\"",
            ),
            with_body(r#"[["fp"], {}]"#),
            with_body(r#"[["fp"], {}, {}, 4]"#),
            with_body(r#"["fp", {}, {}]"#),
            with_body(r#"[["fp"], [], {}]"#),
            with_body(r#"{"task": "a.b", "id": "1", "args": ["fp"]}"#),
            with_body("not json"),
            r#"{"body": "[[\"fp\"], {}, {}]", "headers": {"task": "a.b", "id": "1"}}"#.to_owned(),
            r#"{"body": "[[\"fp\"], {}, {}]", "headers": {"task": "a.b", "id": "1"}, "properties": null}"#.to_owned(),
            r#"{"body": "[[\"fp\"], {}, {}]", "headers": 4}"#.to_owned(),
            "[1, 2]".to_owned(),
            // Arrays where the typed structs expect objects (a derived struct also takes an
            // array, by position).
            r#"{"body": "[[], {}, null]", "headers": ["a.b", "1"]}"#.to_owned(),
            r#"["[[], {}, null]", null, ["a.b", "1"]]"#.to_owned(),
            SAMPLE.replace(
                "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"celery\"}",
                "\"delivery_info\": [true]",
            ),
            SAMPLE.replace("\"properties\": {", "\"properties\": [\"base64\"], \"p\": {"),
            // What the typed pass would skip unchecked in an unknown key or the body's third
            // element: a number out of range, a lone surrogate, nesting past the parser's limit,
            // a byte that is not UTF-8.
            SAMPLE.replace("\"lang\": \"py\"", "\"lang\": 1e400"),
            SAMPLE.replace("\"lang\": \"py\"", "\"lang\": \"\\ud800\""),
            SAMPLE.replace(
                "\"lang\": \"py\"",
                &format!("\"lang\": {}{}", "[".repeat(129), "]".repeat(129)),
            ),
            with_body(r#"[[], {}, 1e400]"#),
            with_body(r#"[[], {}, "\ud800"]"#),
        ]);
        // The body's third element holds the byte 0xFF (not UTF-8).
        let mut bad_utf8 = b"[[], {}, \"".to_vec();
        bad_utf8.extend([0xFF, b'"', b']']);
        unusual.push(with_body(&bad_utf8));
        for msg in &unusual {
            let general = match serde_json::from_slice::<Value>(msg.as_bytes()) {
                Ok(v) => decode_value(&v),
                Err(e) => Err(EnvelopeError::NotAnEnvelope(e.to_string())),
            };
            assert_eq!(decode(msg.as_bytes()), general, "{msg}");
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
