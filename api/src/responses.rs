//! The reusable error responses, each the [`ErrorEnvelope`] with its status's meaning.

use utoipa::ToResponse;

use crate::error::ErrorEnvelope;

/// 400 `bad_json` or `bad_request`.
#[derive(ToResponse)]
#[response(
    description = "`bad_json`: the body is not JSON; `bad_request`: the request is malformed \
        (e.g. a path segment that does not decode)"
)]
pub struct BadRequest(pub ErrorEnvelope);

/// 401 `unauthorized`.
#[derive(ToResponse)]
#[response(
    description = "`unauthorized`: `API_TOKEN` is set and the bearer token is missing or wrong",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(pub ErrorEnvelope);

/// 404 `not_found`.
#[derive(ToResponse)]
#[response(description = "`not_found`: no such job name, job, session or route")]
pub struct NotFound(pub ErrorEnvelope);

/// 409 `conflict`.
#[derive(ToResponse)]
#[response(description = "`conflict`: a record with the same key already exists")]
pub struct Conflict(pub ErrorEnvelope);

/// 413 `payload_too_large`.
#[derive(ToResponse)]
#[response(description = "`payload_too_large`: the body is over `API_MAX_BODY_BYTES`")]
pub struct PayloadTooLarge(pub ErrorEnvelope);

/// 415 `unsupported_media_type`.
#[derive(ToResponse)]
#[response(description = "`unsupported_media_type`: the body declares a type other than JSON")]
pub struct UnsupportedMediaType(pub ErrorEnvelope);

/// 422 `invalid_argument`.
#[derive(ToResponse)]
#[response(description = "`invalid_argument`: JSON of the wrong shape or value; `field` names it")]
pub struct Unprocessable(pub ErrorEnvelope);

/// 500 `internal`.
#[derive(ToResponse)]
#[response(description = "`internal`: a bug; the cause is logged, never sent")]
pub struct Internal(pub ErrorEnvelope);

/// 503 `unavailable`.
#[derive(ToResponse)]
#[response(
    description = "`unavailable`: Redis or the database is unreachable; retry after the delay",
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(pub ErrorEnvelope);
