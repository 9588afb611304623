//! The API over HTTP, in process, against the real Redis and a private PostgreSQL database.
//!
//! Each test builds its own [`TestApp`]: a fresh Redis namespace and database, removed on drop.

use std::collections::HashMap;
use std::time::Duration;

use api::{ApiConfig, AppState};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use domain::config::Settings;
use serde_json::{Value, json};
use testkit::{TestDb, TestRedis};
use tower::ServiceExt;

const JOB: &str = "persist_anonymous_session";

/// One app over its own namespace and database.
struct TestApp {
    router: Router,
    state: AppState,
    _redis: TestRedis,
    _db: TestDb,
}

/// A response, its body parsed as JSON when it is JSON (else a JSON string of the text).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl TestApp {
    async fn new() -> Self {
        Self::with_api_vars(&[]).await
    }

    /// An app whose [`ApiConfig`] is read from `vars` (`API_TOKEN`, `API_MAX_BODY_BYTES`, ...).
    async fn with_api_vars(vars: &[(&str, &str)]) -> Self {
        let db = TestDb::postgres().await;
        // Connected the way the `api` binary connects.
        let conn = api::connect_redis(&testkit::redis_url())
            .await
            .expect("Redis is running");
        let redis = TestRedis::with_conn(
            domain::conn::connect_single(&testkit::redis_url())
                .await
                .expect("Redis is running"),
        );
        let settings =
            Settings::from_vars(&testkit::service_env(&db, &redis)).expect("test settings");
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let api = ApiConfig::from_vars(&vars).expect("api config");
        let state = AppState::new(conn, db.conn.clone(), settings, api);
        Self {
            router: api::build(state.clone()),
            state,
            _redis: redis,
            _db: db,
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("read body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(request(Method::GET, uri, Body::empty())).await
    }

    async fn post_json(&self, uri: &str, body: Value) -> Reply {
        self.send(json_request(uri, body.to_string())).await
    }

    /// Enqueue one job and return its id.
    async fn enqueue(&self, body: Value) -> String {
        let r = self.post_json(&format!("/v1/jobs/{JOB}"), body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        r.body["job_id"].as_str().expect("job_id").to_owned()
    }

    async fn job_status(&self, id: &str) -> String {
        let r = self.get(&format!("/v1/jobs/{JOB}/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["status"].as_str().expect("status").to_owned()
    }

    /// The `/v1/queues` entry of `JOB`.
    async fn queue_counts(&self) -> Value {
        let r = self.get("/v1/queues").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["queues"]
            .as_array()
            .expect("queues array")
            .iter()
            .find(|q| q["name"] == JOB)
            .cloned()
            .expect("persist queue listed")
    }
}

fn request(method: Method, uri: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .expect("valid request")
}

fn json_request(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("valid request")
}

fn assert_error(r: &Reply, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    assert_eq!(r.body["error"]["field"].as_str(), field, "{}", r.body);
}

#[tokio::test]
async fn enqueueing_a_job_returns_202_and_the_job_is_visible_as_queued() {
    let app = TestApp::new().await;

    let id = app.enqueue(json!({"fingerprint": "fp-1"})).await;

    let r = app.get(&format!("/v1/jobs/{JOB}/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"id": id, "name": JOB, "status": "queued", "attempts": 0, "last_error": null})
    );
}

#[tokio::test]
async fn an_array_body_enqueues_every_job_in_one_request() {
    let app = TestApp::new().await;

    let r = app
        .post_json(
            &format!("/v1/jobs/{JOB}"),
            json!([{"fingerprint": "a"}, {"fingerprint": "b"}, {"fingerprint": "c", "delay_seconds": 60}]),
        )
        .await;

    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let ids: Vec<&str> = r.body["job_ids"]
        .as_array()
        .expect("job_ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(app.job_status(ids[0]).await, "queued");
    assert_eq!(app.job_status(ids[1]).await, "queued");
    assert_eq!(app.job_status(ids[2]).await, "scheduled");
    let counts = app.queue_counts().await;
    assert_eq!(
        (counts["queued"].as_u64(), counts["scheduled"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn an_empty_array_enqueues_nothing() {
    let app = TestApp::new().await;

    let r = app.post_json(&format!("/v1/jobs/{JOB}"), json!([])).await;

    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body, json!({"job_ids": []}));
}

#[tokio::test]
async fn unknown_job_names_and_ids_are_404() {
    let app = TestApp::new().await;
    let id = app.enqueue(json!({"fingerprint": "fp"})).await;

    let post = app.post_json("/v1/jobs/no_such_job", json!({})).await;
    let post_garbage = app
        .send(json_request("/v1/jobs/no_such_job", "not json"))
        .await;
    let wrong_name = app.get(&format!("/v1/jobs/no_such_job/{id}")).await;
    let unknown_id = app
        .get(&format!("/v1/jobs/{JOB}/0000000000000000000000000a"))
        .await;
    let malformed_id = app.get(&format!("/v1/jobs/{JOB}/not%20an%20id")).await;

    for r in [post, post_garbage, wrong_name, unknown_id, malformed_id] {
        assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    }
}

#[tokio::test]
async fn a_missing_argument_is_422_naming_the_field_and_nothing_is_pushed() {
    let app = TestApp::new().await;
    let uri = format!("/v1/jobs/{JOB}");

    let object = app.post_json(&uri, json!({})).await;
    let empty = app.post_json(&uri, json!({"fingerprint": ""})).await;
    let array = app
        .post_json(
            &uri,
            json!([{"fingerprint": "a"}, {"fingerprint": "b"}, {}, {"fingerprint": "d"}]),
        )
        .await;
    let single = app.post_json(&uri, json!([{"nope": 1}])).await;
    let not_object_item = app.post_json(&uri, json!([{"fingerprint": "a"}, 7])).await;

    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    assert_error(&object, invalid, "invalid_argument", Some("fingerprint"));
    assert_error(&empty, invalid, "invalid_argument", Some("fingerprint"));
    assert_error(&array, invalid, "invalid_argument", Some("[2].fingerprint"));
    assert_error(
        &single,
        invalid,
        "invalid_argument",
        Some("[0].fingerprint"),
    );
    assert_error(&not_object_item, invalid, "invalid_argument", Some("[1]"));
    assert_eq!(app.queue_counts().await["queued"], 0);
}

#[tokio::test]
async fn delay_seconds_and_run_at_schedule_the_job() {
    let app = TestApp::new().await;
    let uri = format!("/v1/jobs/{JOB}");
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();

    let delayed = app
        .enqueue(json!({"fingerprint": "fp", "delay_seconds": 30}))
        .await;
    let at = app
        .enqueue(json!({"fingerprint": "fp", "run_at": later}))
        .await;
    let both = app
        .post_json(
            &uri,
            json!({"fingerprint": "fp", "delay_seconds": 1, "run_at": later}),
        )
        .await;
    let negative = app
        .post_json(&uri, json!({"fingerprint": "fp", "delay_seconds": -1}))
        .await;
    let bad_time = app
        .post_json(&uri, json!({"fingerprint": "fp", "run_at": "next tuesday"}))
        .await;

    assert_eq!(app.job_status(&delayed).await, "scheduled");
    assert_eq!(app.job_status(&at).await, "scheduled");
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    assert_error(&both, invalid, "invalid_argument", Some("run_at"));
    assert_error(
        &negative,
        invalid,
        "invalid_argument",
        Some("delay_seconds"),
    );
    assert_error(&bad_time, invalid, "invalid_argument", Some("run_at"));
}

#[tokio::test]
async fn v1_requires_the_bearer_token_when_one_is_set() {
    let app = TestApp::with_api_vars(&[("API_TOKEN", "s3cret-token")]).await;
    let with_auth = |value: &str| {
        Request::builder()
            .uri("/v1/queues")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .expect("valid request")
    };

    let none = app.get("/v1/queues").await;
    let wrong = app.send(with_auth("Bearer s3cret-tokeN")).await;
    let basic = app.send(with_auth("Basic s3cret-token")).await;
    let right = app.send(with_auth("Bearer s3cret-token")).await;
    let post_without = app
        .post_json(&format!("/v1/jobs/{JOB}"), json!({"fingerprint": "x"}))
        .await;
    let health = app.get("/healthz").await;

    for r in [&none, &wrong, &basic, &post_without] {
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized", None);
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(app.queue_counts_with_token("s3cret-token").await, 0);
}

impl TestApp {
    /// Queued count of `JOB`, authenticated.
    async fn queue_counts_with_token(&self, token: &str) -> u64 {
        let req = Request::builder()
            .uri("/v1/queues")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("valid request");
        let r = self.send(req).await;
        r.body["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == JOB))
            .and_then(|q| q["queued"].as_u64())
            .expect("queued count")
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_the_envelope() {
    let app = TestApp::with_api_vars(&[("API_MAX_BODY_BYTES", "1024")]).await;
    let uri = format!("/v1/jobs/{JOB}");
    let big = json!({"fingerprint": "x".repeat(2048)}).to_string();
    let chunks: Vec<Result<String, std::io::Error>> = (0..8).map(|_| Ok("x".repeat(256))).collect();

    let mut sized = json_request(&uri, big.clone());
    sized
        .headers_mut()
        .insert(header::CONTENT_LENGTH, big.len().into());
    let sized = app.send(sized).await;
    let chunked = app
        .send(json_request(
            &uri,
            Body::from_stream(futures::stream::iter(chunks)),
        ))
        .await;
    let padded = format!(r#"{{"fingerprint": "fp"{}}}"#, " ".repeat(1000));
    let small = app.send(json_request(&uri, padded)).await;

    assert_error(
        &sized,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert_error(
        &chunked,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert_eq!(small.status, StatusCode::ACCEPTED, "{}", small.body);
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_refused_with_a_clear_message() {
    let app = TestApp::new().await;
    let uri = format!("/v1/jobs/{JOB}");

    let garbage = app.send(json_request(&uri, "{fingerprint: nope")).await;
    let empty = app.send(json_request(&uri, "")).await;
    let number = app.send(json_request(&uri, "5")).await;
    let text_plain = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(&uri)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"fingerprint": "a"}"#))
                .expect("valid request"),
        )
        .await;
    let no_content_type = app
        .send(request(
            Method::POST,
            &uri,
            Body::from(r#"{"fingerprint": "a"}"#),
        ))
        .await;

    assert_error(&garbage, StatusCode::BAD_REQUEST, "bad_json", None);
    assert_error(&empty, StatusCode::BAD_REQUEST, "bad_json", None);
    assert_error(
        &number,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        None,
    );
    assert_error(
        &text_plain,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );
    assert_eq!(no_content_type.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn queues_lists_every_registered_job_with_its_counts() {
    let app = TestApp::new().await;
    app.enqueue(json!({"fingerprint": "a"})).await;
    app.enqueue(json!({"fingerprint": "b"})).await;
    app.enqueue(json!({"fingerprint": "c", "delay_seconds": 60}))
        .await;

    let r = app.get("/v1/queues").await;

    assert_eq!(r.status, StatusCode::OK);
    let queues = r.body["queues"].as_array().expect("queues");
    let names: Vec<&str> = queues.iter().filter_map(|q| q["name"].as_str()).collect();
    let registered: Vec<&str> = domain::registry::JOBS.iter().map(|j| j.name).collect();
    assert_eq!(names, registered);
    let persist = queues.iter().find(|q| q["name"] == JOB).expect("listed");
    assert_eq!(persist["queued"], 2);
    assert_eq!(persist["scheduled"], 1);
    for key in ["running", "done", "dead", "oldest_waiting_seconds"] {
        assert!(persist[key].is_number(), "{key} in {persist}");
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok_when_dependencies_answer() {
    let app = TestApp::new().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_is_unreachable() {
    let app = TestApp::new().await;
    app.state
        .db
        .connection()
        .close_by_ref()
        .await
        .expect("close pool");

    let ready = app.get("/readyz").await;

    assert_error(&ready, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert_eq!(ready.headers[header::RETRY_AFTER], "1");
    let message = ready.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("database"), "{message}");
    assert!(!message.contains("redis"), "{message}");
}

#[tokio::test]
async fn metrics_exposes_request_counts_and_queue_depths() {
    let app = TestApp::new().await;
    app.enqueue(json!({"fingerprint": "a"})).await;
    app.get("/v1/queues").await;

    let r = app.get("/metrics").await;

    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = r.body.as_str().expect("text body");
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains(r#"path="/v1/queues""#), "{text}");
    assert!(text.contains(r#"path="/v1/jobs/{name}""#), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"celeriac_queue_jobs{{queue="{JOB}",status="queued"}}"#
        )),
        "{text}"
    );
    assert!(
        text.contains("celeriac_queue_oldest_waiting_seconds{"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_the_envelope() {
    let app = TestApp::new().await;

    let missing = app.get("/nope").await;
    let missing_v1 = app.get("/v1/nope").await;
    let wrong_method = app
        .send(request(Method::DELETE, "/v1/queues", Body::empty()))
        .await;

    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(&missing_v1, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::new().await;
    let given = Request::builder()
        .uri("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .expect("valid request");

    let fresh = app.get("/healthz").await;
    let echoed = app.send(given).await;

    assert!(fresh.headers.contains_key("x-request-id"));
    assert_eq!(echoed.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn serve_answers_on_a_socket_and_stops_when_told() {
    let app = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, app.state.clone(), async move {
        let _ = stopped.await;
    }));

    let reply = testkit::http_full(&addr.to_string(), "GET", "/healthz", None, None)
        .await
        .expect("an answer on the socket");
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve stops after shutdown")
        .expect("serve task");

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"status": "ok"}), "{reply:?}");
    assert!(result.is_ok());
}

/// Dead jobs are listed with their error and arguments, paged; requeued or discarded by id or
/// all at once; the other states list too; bad queries name their field.
#[tokio::test]
async fn dead_jobs_are_listed_requeued_and_discarded() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.enqueue(json!({ "fingerprint": format!("fp-{i}") }))
                .await,
        );
    }
    let queued = app
        .get(&format!("/v1/queues/{JOB}/jobs?state=queued&limit=2"))
        .await;
    assert_eq!(queued.status, StatusCode::OK, "{}", queued.body);
    assert_eq!(queued.body["total"], 5);
    assert_eq!(queued.body["next_offset"], 2);
    assert_eq!(queued.body["jobs"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        queued.body["jobs"][0]["args"],
        json!({"fingerprint": "fp-0"})
    );
    // A worker's attempts fail for good: the jobs die with their error.
    let q = app.state.queues.get(JOB).expect("queue").clone();
    let leased = q.fetch(5).await.expect("fetch").jobs;
    let acks: Vec<queue::Ack> = leased
        .iter()
        .map(|j| queue::Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: format!("database refused {}", j.id),
        })
        .collect();
    q.ack(&acks).await.expect("ack");
    let dead = app.get(&format!("/v1/queues/{JOB}/jobs?state=dead")).await;
    assert_eq!(dead.status, StatusCode::OK, "{}", dead.body);
    assert_eq!(dead.body["total"], 5);
    assert_eq!(dead.body["next_offset"], Value::Null);
    let first = &dead.body["jobs"][0];
    let first_id = first["id"].as_str().expect("id").to_owned();
    assert!(ids.contains(&first_id));
    assert_eq!(first["last_error"], format!("database refused {first_id}"));
    assert_eq!(first["attempts"], 1);
    assert!(first["state_at"].is_string() && first["enqueued_at"].is_string());
    // Requeue one (and an id that is not dead), discard another, then requeue all the rest.
    let r = app
        .post_json(
            &format!("/v1/queues/{JOB}/dead/requeue"),
            json!({"ids": [first_id, "nope"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"done": 1, "not_dead": ["nope"]}));
    assert_eq!(app.job_status(&first_id).await, "queued");
    let second = dead.body["jobs"][1]["id"].as_str().expect("id").to_owned();
    let r = app
        .post_json(
            &format!("/v1/queues/{JOB}/dead/discard"),
            json!({"ids": [second]}),
        )
        .await;
    assert_eq!(r.body, json!({"done": 1, "not_dead": []}));
    let gone = app.get(&format!("/v1/jobs/{JOB}/{second}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let r = app
        .post_json(
            &format!("/v1/queues/{JOB}/dead/requeue"),
            json!({"all": true}),
        )
        .await;
    assert_eq!(r.body, json!({"done": 3, "not_dead": []}));
    let counts = app.queue_counts().await;
    assert_eq!(
        (counts["queued"].clone(), counts["dead"].clone()),
        (json!(4), json!(0))
    );
    // Refusals name their field.
    let r = app.get(&format!("/v1/queues/{JOB}/jobs?state=lost")).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("state"),
    );
    let r = app
        .get(&format!("/v1/queues/{JOB}/jobs?state=dead&limit=1000"))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("limit"),
    );
    let r = app
        .post_json(&format!("/v1/queues/{JOB}/dead/requeue"), json!({}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("ids"),
    );
    let r = app
        .post_json(
            &format!("/v1/queues/{JOB}/dead/discard"),
            json!({"ids": ["a"], "all": true}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("ids"),
    );
    let r = app.get("/v1/queues/nope/jobs?state=dead").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
}

/// A queue paused through the API shows as paused, and resumes.
#[tokio::test]
async fn queues_pause_and_resume() {
    let app = TestApp::new().await;
    let r = app
        .post_json(&format!("/v1/queues/{JOB}/pause"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"name": JOB, "paused": true}));
    assert_eq!(app.queue_counts().await["paused"], true);
    let id = app.enqueue(json!({"fingerprint": "fp-p"})).await;
    let q = app.state.queues.get(JOB).expect("queue").clone();
    assert!(q.fetch(10).await.expect("fetch").jobs.is_empty());
    let r = app
        .post_json(&format!("/v1/queues/{JOB}/resume"), json!({}))
        .await;
    assert_eq!(r.body, json!({"name": JOB, "paused": false}));
    assert_eq!(app.queue_counts().await["paused"], false);
    assert_eq!(q.fetch(10).await.expect("fetch").jobs[0].id, id);
    let r = app.post_json("/v1/queues/nope/pause", json!({})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
}

/// `/v1/schedules` shows what the scheduler published; an entry no scheduler published keeps its
/// default cron and no ticks.
#[tokio::test]
async fn schedules_show_what_the_scheduler_published() {
    let app = TestApp::new().await;
    let ns = app.state.settings.namespace.clone();
    let next = "2026-12-03T00:01:00Z";
    let published = json!({"cron": "0 * * * * *", "next_tick": next}).to_string();
    let mut conn = app.state.redis.clone();
    let _: () = redis::pipe()
        .hset(
            domain::schedules::entries_key(&ns),
            "finalize_idle_sessions",
            published,
        )
        .hset(
            domain::schedules::enqueued_by_key(&ns),
            "finalize_idle_sessions",
            "host-a:42",
        )
        .set(
            domain::schedules::last_tick_key(&ns, "finalize_idle_sessions"),
            1_796_256_000_i64,
        )
        .query_async(&mut conn)
        .await
        .expect("seed");
    let r = app.get("/v1/schedules").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let all = r.body["schedules"].as_array().expect("schedules");
    let jobs: Vec<&str> = all.iter().filter_map(|s| s["job"].as_str()).collect();
    assert_eq!(
        jobs,
        [
            "cleanup_old_anonymous_data",
            "aggregate_page_analytics",
            "finalize_idle_sessions",
            "end_expired_sessions"
        ]
    );
    let idle = &all[2];
    assert_eq!(idle["cron"], "0 * * * * *");
    assert_eq!(idle["published"], true);
    assert_eq!(idle["next_tick"], next);
    assert_eq!(idle["last_tick"], "2026-12-03T00:00:00Z");
    assert_eq!(idle["enqueued_by"], "host-a:42");
    let cleanup = &all[0];
    assert_eq!(
        cleanup,
        &json!({"job": "cleanup_old_anonymous_data", "cron": "0 0 3 * * *", "published": false,
                "last_tick": null, "next_tick": null, "enqueued_by": null})
    );
}

/// Run-now moves delayed jobs to the front of the line and names the ids it could not run; the
/// retrying state lists none of them (no attempt failed); a page cannot start past Redis's reach.
#[tokio::test]
async fn run_now_moves_waiting_jobs_and_names_the_others() {
    let app = TestApp::new().await;
    let delayed = app
        .enqueue(json!({"fingerprint": "fp", "delay_seconds": 3600}))
        .await;
    let queued = app.enqueue(json!({"fingerprint": "fp2"})).await;
    let uri = format!("/v1/queues/{JOB}/jobs/run-now");
    let r = app
        .post_json(&uri, json!({"ids": [delayed, queued, "nope"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"done": 1, "not_waiting": [queued, "nope"]}));
    assert_eq!(app.job_status(&delayed).await, "queued");
    let page = app
        .get(&format!("/v1/queues/{JOB}/jobs?state=queued"))
        .await;
    assert_eq!(
        page.body["jobs"][0]["id"],
        delayed.as_str(),
        "first in line"
    );
    let retrying = app
        .get(&format!("/v1/queues/{JOB}/jobs?state=retrying"))
        .await;
    assert_eq!(retrying.status, StatusCode::OK, "{}", retrying.body);
    assert_eq!(retrying.body["total"], Value::Null);
    assert_eq!(retrying.body["jobs"], json!([]));
    let empty = app.post_json(&uri, json!({"ids": []})).await;
    assert_error(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("ids"),
    );
    let far = app
        .get(&format!(
            "/v1/queues/{JOB}/jobs?state=dead&offset=18446744073709551615"
        ))
        .await;
    assert_error(
        &far,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
        Some("offset"),
    );
}
