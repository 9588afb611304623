//! Fuzz target: arbitrary bytes as a message in a Celery broker list → `envelope::decode` → for every job, `arguments()` with its positional fields, then `JobSpec.check`.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use worker::celery::envelope::{self, CeleryTask, EnvelopeError};
use domain::registry::JOBS;
use domain::registry;

fuzz_target!(|data: &[u8]| {
    // The bytes exactly as found in the list.
    let decoded = envelope::decode(data);
    match serde_json::from_slice::<Value>(data) {
        Ok(parsed) => {
            // `decode` is JSON parsing followed by `decode_value`, nothing more.
            assert_eq!(envelope::decode_value(&parsed), decoded);
            // Second pass: the same envelope with its body given decoded (any JSON value), which
            // the harness base64-encodes as Celery does, so mutations reach the body's structure.
            if let Some(raw) = with_encoded_body(parsed)
                && let Ok(task) = envelope::decode(&raw)
            {
                exercise(&task);
            }
        }
        Err(_) => assert!(matches!(decoded, Err(EnvelopeError::NotAnEnvelope(_)))),
    }
    if let Ok(task) = decoded {
        exercise(&task);
    }
});

/// `env` with a non-string `body` serialized and base64-encoded (`properties.body_encoding`).
fn with_encoded_body(env: Value) -> Option<Vec<u8>> {
    let Value::Object(mut env) = env else {
        return None;
    };
    let body = env.get("body").filter(|b| !b.is_string())?;
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    env.insert("body".into(), Value::String(encoded));
    match env.get_mut("properties") {
        Some(Value::Object(props)) => {
            props.insert("body_encoding".into(), "base64".into());
        }
        _ => {
            env.insert("properties".into(), json!({"body_encoding": "base64"}));
        }
    }
    Some(serde_json::to_vec(&Value::Object(env)).expect("a JSON value serializes"))
}

/// What the Celery bridge does with a decoded task, for every job rather than only the named one.
fn exercise(task: &CeleryTask) {
    assert!(!task.id.is_empty() && !task.task.is_empty());
    let job = task.job_name();
    assert!(!job.contains('.') && task.task.ends_with(job));
    let _ = registry::find(job);
    for spec in JOBS {
        match task.arguments(spec.positional) {
            Ok(Value::Object(args)) => {
                assert_eq!(args.len(), task.args.len() + task.kwargs.len());
                // What the producer accepts, the consumer accepts again unchanged.
                if let Ok(normalized) = (spec.check)(Value::Object(args)) {
                    assert_eq!(
                        (spec.check)(normalized.clone()),
                        Ok(normalized),
                        "{}",
                        spec.name
                    );
                }
            }
            Ok(other) => panic!("arguments() gave a non-object: {other}"),
            Err(_) => {
                let collides = spec
                    .positional
                    .iter()
                    .take(task.args.len())
                    .any(|f| task.kwargs.contains_key(*f));
                assert!(task.args.len() > spec.positional.len() || collides);
            }
        }
    }
}
