//! The console's stylesheet and script, compiled into the binary and served with a version in
//! their URL (so they can be cached for a day and still change with each release).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/favicon.svg");

/// The stylesheet's URL.
pub const CSS_URL: &str = concat!("/console/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// The script's URL.
pub const JS_URL: &str = concat!("/console/assets/console.js?v=", env!("CARGO_PKG_VERSION"));
/// The icon's URL.
pub const ICON_URL: &str = "/console/assets/favicon.svg";

/// `GET /console/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}
