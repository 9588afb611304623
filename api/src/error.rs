//! The API's one error type and its JSON envelope: `{"error": {"code", "message", "field"?}}`.
//!
//! Every handler returns `Result<_, ApiError>`. Lower layers' errors are mapped here, once:
//!
//! | source | response |
//! |---|---|
//! | [`EnqueueError::UnknownJob`] | 404 `not_found` |
//! | [`EnqueueError::InvalidArgs`] | 422 `invalid_argument` with `field` |
//! | [`QueueError`] from a connection, timeout or I/O failure | 503 `unavailable` + `Retry-After: 1` |
//! | [`QueueError`] otherwise (a Redis reply we did not expect) | 500 `internal`, logged once |
//! | [`tracking::TrackError`] | as its variant: 422 with `field`, 404, 409 with `field`, or as the Redis, database or queue error below |
//! | [`DbErr::RecordNotFound`] | 404 `not_found` |
//! | [`DbErr`] unique violation | 409 `conflict` |
//! | [`DbErr`] pool, connection or I/O failure | 503 `unavailable` + `Retry-After: 1` |
//! | [`DbErr`] otherwise | 500 `internal`, logged once |
//! | body over `API_MAX_BODY_BYTES` | 413 `payload_too_large` |
//! | body that is not JSON | 400 `bad_json` |
//!
//! A 500 never tells the client more than "internal error"; the cause goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::queues::EnqueueError;
use queue::QueueError;
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to the client as the JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `invalid_argument`, ...).
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The request field at fault, as a dotted path (`fingerprint`, `[3].fingerprint`).
    pub field: Option<String>,
}

/// Every error response's body: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_argument", "message": "must be 1 to 128 characters without spaces", "field": "fingerprint"}}))]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// The error inside [`ErrorEnvelope`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code: `bad_json`, `bad_request`, `unauthorized`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `invalid_argument`, `unavailable` or `internal`.
    #[schema(value_type = String, example = "invalid_argument")]
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The request field at fault, as a dotted path (`fingerprint`, `[3].fingerprint`); present
    /// only when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Name the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// 401: no or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    /// 404 for a job (and queue) name the registry does not know.
    pub fn unknown_job(name: &str) -> Self {
        Self::not_found(format!("no job is named {name:?}"))
    }

    /// 404 with a message saying what was not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the path exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    /// 422: the request is well-formed JSON but a value is wrong.
    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            message,
        )
        .with_field(field)
    }

    /// 400: the body is not JSON.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    /// 400: any other malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 413: the body is over the configured limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is over the size limit (API_MAX_BODY_BYTES)",
        )
    }

    /// 415: a body that declares a type other than JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be JSON (Content-Type: application/json)",
        )
    }

    /// 409: the write conflicts with existing data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: a dependency (Redis, the database) is unreachable; clients should retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a bug or an unexpected reply. Log the cause before calling this; it is not sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{} ({}): {field}: {}",
                self.status, self.code, self.message
            ),
            None => write!(f, "{} ({}): {}", self.status, self.code, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::UnknownJob(name) => Self::unknown_job(&name),
            EnqueueError::InvalidArgs(arg) => Self::invalid_argument(arg.field, arg.message),
            EnqueueError::Queue(q) => q.into(),
        }
    }
}

impl From<tracking::TrackError> for ApiError {
    fn from(e: tracking::TrackError) -> Self {
        use tracking::TrackError as T;
        match e {
            T::Invalid(arg) => Self::invalid_argument(arg.field, arg.message),
            T::NotFound(what) => Self::not_found(format!("{what} not found")),
            T::Conflict(arg) => Self::conflict(arg.message).with_field(arg.field),
            T::Redis(r) => QueueError::Redis(r).into(),
            T::Db(d) => d.into(),
            T::Enqueue(q) => q.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match &e {
            QueueError::Redis(r) if redis_unreachable(r) => {
                tracing::warn!(error = %e, "redis unavailable");
                Self::unavailable("the queue (Redis) is unavailable")
            }
            _ => {
                tracing::error!(error = %e, "queue error");
                Self::internal()
            }
        }
    }
}

/// True for Redis failures that mean "not reachable right now" rather than "we sent nonsense".
pub(crate) fn redis_unreachable(e: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    // A Redis at `maxmemory` refuses writes (and, whole, the page-view script): try later.
    e.code() == Some("OOM")
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Io | ErrorKind::ClusterConnectionNotFound
        )
        || matches!(
            e.kind(),
            ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        if let DbErr::RecordNotFound(what) = &e {
            return Self::not_found(what.clone());
        }
        if let Some(SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            return Self::conflict("a record with the same key already exists");
        }
        if db_unreachable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::unavailable("the database is unavailable");
        }
        tracing::error!(error = %e, "database error");
        Self::internal()
    }
}

/// True for database failures that mean "not reachable right now" ([`domain::db::is_unavailable`]).
pub(crate) fn db_unreachable(e: &DbErr) -> bool {
    domain::db::is_unavailable(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::args::ArgError;

    async fn body_json(e: ApiError) -> (StatusCode, Option<HeaderValue>, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let retry = r.headers().get(header::RETRY_AFTER).cloned();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            retry,
            serde_json::from_slice(&bytes).expect("JSON body"),
        )
    }

    #[tokio::test]
    async fn errors_render_as_the_envelope_and_only_name_a_field_when_there_is_one() {
        let (status, retry, body) =
            body_json(ApiError::invalid_argument("fingerprint", "empty")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(retry.is_none());
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_argument", "message": "empty", "field": "fingerprint"}})
        );
        let (_, _, body) = body_json(ApiError::not_found("x")).await;
        assert!(body["error"].get("field").is_none());
    }

    #[tokio::test]
    async fn unavailable_dependencies_answer_503_with_retry_after() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let (status, retry, body) = body_json(QueueError::Redis(io).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.expect("Retry-After"), "1");
        assert_eq!(body["error"]["code"], "unavailable");
        let db = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        assert_eq!(ApiError::from(db).status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn enqueue_errors_map_to_404_and_422() {
        let e = ApiError::from(EnqueueError::UnknownJob("nope".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ApiError::from(EnqueueError::InvalidArgs(ArgError::new(
            "[2].fingerprint",
            "bad",
        )));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("[2].fingerprint"));
        let e = ApiError::from(QueueError::Protocol("weird".into()));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.message, "internal error");
    }
}
