//! Request extractors whose rejections are [`ApiError`]s, so clients always get the JSON envelope.
//!
//! Use [`Json`] (not `axum::Json`) for request bodies. It reads the body under the configured
//! limit (413 `payload_too_large` past it), refuses a declared non-JSON `Content-Type` (415),
//! answers 400 `bad_json` for text that is not JSON and 422 `invalid_argument` naming the field
//! for JSON of the wrong shape. A missing `Content-Type` is accepted (`curl -d` sends a form type,
//! so add `-H 'Content-Type: application/json'`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`, rejected with [`ApiError`].
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE)
            && !is_json(ct.to_str().unwrap_or_default())
        {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// Path parameters of type `T`, rejected with [`ApiError`] (400 `bad_request`).
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// True for `application/json` and `application/*+json`, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parse `bytes` as JSON of type `T`, naming the field that does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_json("request body is empty; expected JSON"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&inner, &field_of(&path, &inner.to_string()))
    })?;
    de.end().map_err(|e| json_error(&e, ""))?;
    Ok(value)
}

/// Read one JSON value as a `T`, naming the field that does not fit (as [`parse`] does for a
/// body): one element of a batch, refused on its own.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::invalid_argument(field_of(&path, &inner.to_string()), inner.to_string())
    })
}

/// The dotted path of the field at fault. serde names a missing field only in its message
/// ("missing field `x`"), with the path pointing at the parent.
fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    match message.split_once("missing field `") {
        Some((_, rest)) => {
            let name = rest.split('`').next().unwrap_or_default();
            if parent.is_empty() {
                name.to_owned()
            } else {
                format!("{parent}.{name}")
            }
        }
        None => parent.to_owned(),
    }
}

fn json_error(e: &serde_json::Error, field: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => ApiError::invalid_argument(field, e.to_string()),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_json(format!("request body is not valid JSON: {e}"))
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large()
        } else {
            Self::bad_request(r.body_text())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => Self::invalid_argument("", e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::bad_json(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::unsupported_media_type(),
            JsonRejection::BytesRejection(e) => e.into(),
            other => Self::new(other.status(), "bad_request", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Args {
        fingerprint: String,
        nested: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Inner {
        n: u32,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_naming_the_field() {
        let e = parse::<Args>(b"{not json").expect_err("must be refused");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_json"));
        let e = parse::<Args>(b"  ").expect_err("must be refused");
        assert_eq!(e.code, "bad_json");
        let e = parse::<Args>(br#"{"fingerprint": "a"} trailing"#).expect_err("must be refused");
        assert_eq!(e.code, "bad_json");
        let e = parse::<Args>(br#"{"fingerprint": "a", "nested": {"n": "x"}}"#)
            .expect_err("must be refused");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("nested.n"));
        let e = parse::<Args>(br#"{"nested": {"n": 1}}"#).expect_err("must be refused");
        assert_eq!(e.field.as_deref(), Some("fingerprint"));
        let e =
            parse::<Args>(br#"{"fingerprint": "a", "nested": {}}"#).expect_err("must be refused");
        assert_eq!(e.field.as_deref(), Some("nested.n"));
        assert!(parse::<Args>(br#"{"fingerprint": "a"}"#).is_ok());
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
