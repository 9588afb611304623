//! The console: the operator's and analyst's pages under `/console`, rendered on the server
//! (maud) with their CSS, JavaScript and charts (inline SVG) compiled into the binary.
//!
//! Every page is a GET that changes nothing; every action is a POST form with a CSRF token
//! (`session.rs`) that redirects back with a message (post/redirect/get). A page costs Redis a
//! bounded number of calls whatever the queues hold: a stats script per queue, a page of at most
//! [`queue::MAX_PAGE`] jobs, and the history's 60 minute and 24 hour keys. `console.js` refreshes
//! the parts marked `data-live` every 5 seconds by fetching the page again; without JavaScript
//! every page still works, only without live updates.

mod analytics;
mod assets;
mod chart;
mod form;
mod job;
mod layout;
mod overview;
mod queue_page;
mod schedules;
mod session;
mod workers;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;

pub use session::ConsoleKeys;

use crate::error::ApiError;
use crate::state::AppState;

/// Every console route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/queues/{name}", get(queue_page::page))
        .route("/console/queues/{name}/pause", post(queue_page::pause))
        .route("/console/queues/{name}/resume", post(queue_page::resume))
        .route("/console/queues/{name}/jobs", post(queue_page::act))
        .route("/console/queues/{name}/jobs/{id}", get(job::page))
        .route("/console/workers", get(workers::page))
        .route("/console/schedules", get(schedules::page))
        .route("/console/analytics", get(analytics::page))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every console response carries: nothing from elsewhere runs or frames it.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A console error, shown as a page with its status.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    message: String,
}

impl ConsoleError {
    /// 403.
    pub fn forbidden(message: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.to_owned(),
        }
    }

    /// 401 (an action without a session).
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "sign in first".to_owned(),
        }
    }

    /// 400, naming the field at fault.
    pub fn bad_form(field: &str, message: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}: {message}"),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        let message = match &e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message.clone(),
        };
        Self {
            status: e.status,
            message,
        }
    }
}

impl From<queue::QueueError> for ConsoleError {
    fn from(e: queue::QueueError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let page = layout::bare(
            "Error",
            html! {
                h1 { "Something went wrong" }
                p.flash.error role="alert" { (self.status.as_u16()) ": " (self.message) }
                p { a href="/console" { "Back to the overview" } }
            },
        );
        (self.status, page).into_response()
    }
}

/// The flash message an action's redirect asks for: `?done=<what>&n=<count>`, from a fixed list
/// (the query never reaches the page as text).
pub fn flash(done: Option<&str>, n: Option<u64>) -> Option<String> {
    let n = n.unwrap_or(0);
    let what = match done? {
        "requeued" => "requeued",
        "discarded" => "discarded",
        "run-now" => "moved to the front of the line",
        "paused" => return Some("Queue paused: workers lease nothing from it.".to_owned()),
        "resumed" => return Some("Queue resumed.".to_owned()),
        _ => return None,
    };
    Some(format!("{n} job{} {what}.", if n == 1 { "" } else { "s" }))
}
