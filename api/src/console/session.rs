//! Who may use the console: the login form that trades the API token for a signed, HttpOnly,
//! SameSite=Strict session cookie, the [`Viewer`] every page and action extracts, and the CSRF
//! token every form carries.
//!
//! The cookie is `<expiry>.<mac>`: the expiry (epoch seconds, [`SESSION_TTL`] after login) and
//! HMAC-SHA256 of it under a key derived from the API token. No server-side state: every API
//! process that has the token checks every cookie, and changing the token ends every session.
//! A form's CSRF token is the HMAC of the session cookie (so it dies with the session), checked
//! in constant time on every POST, with the `Origin` header (when the browser sends one) checked
//! against `Host`. Without `API_TOKEN` the console is open like the API (a warning at start says
//! so); its CSRF tokens are then keyed by a per-process random key.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use sha2::{Digest, Sha256};

use super::ConsoleError;
use super::form::Form;
use super::layout;
use crate::config::ApiToken;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "celeriac_console";

/// How long a login lasts: 12 hours.
pub const SESSION_TTL: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The console's keys: the session key (from the token) or, without a token, a random one.
pub struct ConsoleKeys {
    key: [u8; 32],
    open: bool,
}

impl std::fmt::Debug for ConsoleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleKeys")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl ConsoleKeys {
    /// Keys for a console behind `token` (open when `None`).
    pub fn new(token: Option<&ApiToken>) -> Self {
        match token {
            Some(t) => {
                let mut h = Sha256::new();
                h.update(b"celeriac console session key v1\0");
                h.update(t.expose().as_bytes());
                Self {
                    key: h.finalize().into(),
                    open: false,
                }
            }
            None => Self {
                key: rand::random(),
                open: true,
            },
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        // A 32-byte key: `new_from_slice` cannot fail.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for p in parts {
            m.update(p);
            m.update(b"\0");
        }
        hex::encode(m.finalize().into_bytes())
    }

    /// A session cookie value that expires at `expiry` (epoch seconds).
    fn cookie_value(&self, expiry: i64) -> String {
        let e = expiry.to_string();
        format!("{e}.{}", self.mac(&[b"session", e.as_bytes()]))
    }

    /// Whether `value` is a cookie this key signed that has not expired at `now`.
    fn valid_cookie(&self, value: &str, now: i64) -> bool {
        let Some((e, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(expiry) = e.parse::<i64>() else {
            return false;
        };
        if expiry <= now || !e.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let want = self.mac(&[b"session", e.as_bytes()]);
        constant_eq(want.as_bytes(), mac.as_bytes())
    }

    /// The CSRF token of the session `cookie` ("" when the console is open).
    fn csrf(&self, cookie: &str) -> String {
        self.mac(&[b"csrf", cookie.as_bytes()])
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A signed-in console user (or anyone, on an open console), with the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The token every form posts as `csrf`.
    pub csrf: String,
    /// False on an open console (no token): no logout button.
    pub signed_in: bool,
}

impl Viewer {
    /// Check a posted form's CSRF token; 403 when it is missing or wrong.
    pub fn check(&self, form: &Form) -> Result<(), ConsoleError> {
        match form.get("csrf") {
            Some(t) if constant_eq(t.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(ConsoleError::forbidden(
                "the form is stale or was not sent by this console: reload the page and try again",
            )),
        }
    }
}

/// The session cookie's value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a state-changing request came from a page of this host: its `Origin` (when sent)
/// names the `Host` it was sent to, or the `X-Forwarded-Host` a reverse proxy set (a page of
/// another site cannot set either on a form post).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()))
        .any(|host| host.split(',').any(|h| h.trim() == authority))
}

/// Where an unauthenticated page request is sent.
pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/console/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let keys = &state.console;
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        if !safe && !same_origin(&parts.headers) {
            return Err(
                ConsoleError::forbidden("cross-origin form posts are refused").into_response(),
            );
        }
        if keys.open {
            return Ok(Self {
                csrf: keys.csrf("open"),
                signed_in: false,
            });
        }
        let now = chrono::Utc::now().timestamp();
        match session_cookie(&parts.headers) {
            Some(c) if keys.valid_cookie(c, now) => Ok(Self {
                csrf: keys.csrf(c),
                signed_in: true,
            }),
            _ if safe => Err(ToLogin.into_response()),
            _ => Err(ConsoleError::unauthorized().into_response()),
        }
    }
}

/// `GET /console/login`: the login form.
pub async fn login_form(State(state): State<AppState>) -> Response {
    if state.console.open {
        return Redirect::to("/console").into_response();
    }
    login_page(None).into_response()
}

fn login_page(error: Option<&str>) -> layout::Page {
    layout::bare(
        "Sign in",
        html! {
            h1 { "Celeriac console" }
            form.login method="post" action="/console/login" {
                @if let Some(e) = error {
                    p.flash.error role="alert" id="login-error" { (e) }
                }
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password"
                    required autofocus aria-describedby=[error.map(|_| "login-error")];
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `POST /console/login`: a right token sets the session cookie and goes to the overview; a
/// wrong one shows the form again with 401.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    if !same_origin(&headers) {
        return Err(ConsoleError::forbidden(
            "cross-origin form posts are refused",
        ));
    }
    let Some(token) = &state.api.token else {
        return Ok(Redirect::to("/console").into_response());
    };
    let form = Form::parse(&body);
    let presented = form.get("token").unwrap_or_default();
    if !token.matches(presented.as_bytes()) {
        tracing::info!("console sign-in refused");
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not the API token.")),
        )
            .into_response());
    }
    let expiry = chrono::Utc::now().timestamp() + SESSION_TTL;
    let value = state.console.cookie_value(expiry);
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={value}; Path=/console; Max-Age={SESSION_TTL}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    tracing::info!("console sign-in");
    Ok(set_cookie(
        Redirect::to("/console").into_response(),
        &cookie,
    ))
}

/// `POST /console/logout`: forget the cookie.
pub async fn logout(viewer: Viewer, body: Bytes) -> Result<Response, ConsoleError> {
    viewer.check(&Form::parse(&body))?;
    let cookie = format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict");
    Ok(set_cookie(
        Redirect::to("/console/login").into_response(),
        &cookie,
    ))
}

fn set_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_signed_expire_and_belong_to_their_token() {
        let keys = ConsoleKeys::new(Some(&ApiToken::new("secret")));
        let now = 1_000_000;
        let c = keys.cookie_value(now + 60);
        assert!(keys.valid_cookie(&c, now));
        assert!(!keys.valid_cookie(&c, now + 60), "expired");
        let (e, mac) = c.split_once('.').expect("two parts");
        let later = format!("{}.{mac}", e.parse::<i64>().expect("digits") + 1);
        assert!(
            !keys.valid_cookie(&later, now),
            "a changed expiry breaks the mac"
        );
        assert!(!keys.valid_cookie(&format!("+{c}"), now));
        let other = ConsoleKeys::new(Some(&ApiToken::new("other")));
        assert!(!other.valid_cookie(&c, now), "another token's key");
        assert_ne!(keys.csrf(&c), keys.csrf(&keys.cookie_value(now + 61)));
    }

    #[test]
    fn origins_must_name_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        assert!(same_origin(&h), "no Origin: older browsers, curl");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
