//! Fuzz target: arbitrary bytes as job arguments → every `JobSpec.check` (as an object, and as a Celery positional list), plus the Redis session document (`AnonSessionDoc`) and buffered view decoding.
#![no_main]

use chrono::Datelike as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use domain::documents::{AnonSessionDoc, BufferedView, parse_time};
use domain::registry::{JOBS, JobSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // Redis values reach the decoders as `String`; the API's JSON parser refuses these too.
        assert!(serde_json::from_slice::<Value>(data).is_err());
        return;
    };
    // The session document and buffered views, as the worker reads them from Redis.
    if let Ok(doc) = serde_json::from_str::<AnonSessionDoc>(text) {
        session_doc_round_trips(&doc);
    }
    let _ = serde_json::from_str::<BufferedView>(text);
    let _ = parse_time(text);

    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Ok(doc) = serde_json::from_value::<AnonSessionDoc>(value.clone()) {
        session_doc_round_trips(&doc);
    }
    for spec in JOBS {
        check_twice(spec, value.clone());
        // The same value as a Celery positional argument list.
        if let Value::Array(items) = &value
            && items.len() <= spec.positional.len()
        {
            let named: Map<String, Value> = spec
                .positional
                .iter()
                .zip(items)
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            check_twice(spec, Value::Object(named));
        }
    }
});

/// What the producer's check accepts, the consumer's check accepts again, unchanged.
fn check_twice(spec: &JobSpec, value: Value) {
    if let Ok(normalized) = (spec.check)(value) {
        assert!(normalized.is_object(), "{}", spec.name);
        assert_eq!(
            (spec.check)(normalized.clone()),
            Ok(normalized),
            "{}",
            spec.name
        );
    }
}

/// A decoded document written back as JSON decodes to itself (times in years 0–9999, the range
/// RFC 3339 text can carry).
fn session_doc_round_trips(doc: &AnonSessionDoc) {
    let rfc3339 = |t: &chrono::DateTime<chrono::Utc>| (0..=9999).contains(&t.year());
    if rfc3339(&doc.started_at) && rfc3339(&doc.last_activity) {
        let text = serde_json::to_string(doc).expect("a document serializes");
        let again: AnonSessionDoc =
            serde_json::from_str(&text).expect("a written document decodes");
        assert_eq!(&again, doc);
    }
}
