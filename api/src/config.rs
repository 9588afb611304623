//! The API's own configuration (bind address, token, body limit), typed and read once at start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `API_ADDR` | address to bind, `ip:port` | `127.0.0.1:8000` |
//! | `PORT` | when set, replaces the port of `API_ADDR` (Procfile hosts set it) | unset |
//! | `API_TOKEN` | when set, every `/v1` request needs `Authorization: Bearer <token>` | unset: open, warned at start |
//! | `API_MAX_BODY_BYTES` | largest request body accepted; bigger ones get 413 | `1048576` (1 MiB) |
//! | `API_THREADS` | threads serving requests: `1` runs one event loop (a current-thread Tokio runtime), more a multi-thread runtime with that many workers | `1` |
//!
//! Shared settings (`DATABASE_URL`, `REDIS_URL`, `CELERIAC_NAMESPACE`, ...) live in
//! [`domain::config::Settings`].

use std::collections::HashMap;
use std::net::SocketAddr;

use domain::config::{ConfigError, at_least_one, opt};
use subtle::ConstantTimeEq;

/// The default bind address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default number of request threads: one event loop. On the 2-core reference machine, shared
/// with Redis and the workers, one current-thread runtime spent the least CPU per page view
/// (`bench/api.sh`: 2.7 µs less in the API and 2.7 µs less in Redis than one multi-thread worker,
/// as a batch is sealed only after every ready request has been read; a second worker costs ~6 µs
/// more); one thread also serves several times the page-view target.
pub const DEFAULT_THREADS: usize = 1;

/// The API's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where to listen (`API_ADDR`, with `PORT` applied).
    pub addr: SocketAddr,
    /// The bearer token `/v1` requires, if any (`API_TOKEN`).
    pub token: Option<ApiToken>,
    /// The largest request body accepted (`API_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Threads serving requests (`API_THREADS`); 1 is a current-thread runtime.
    pub threads: usize,
    /// `API_DRAIN_SECONDS`: after SIGTERM, how long the API keeps serving with `/readyz` at 503
    /// before it stops taking connections (0), so a load balancer that polls readiness stops
    /// sending requests first.
    pub drain: std::time::Duration,
}

impl ApiConfig {
    /// Read the process environment (`.env` is loaded by [`domain::config::Settings::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Build from explicit variables (tests use this; nothing global is touched).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw_addr = vars
            .get("API_ADDR")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_ADDR);
        let mut addr: SocketAddr = raw_addr.parse().map_err(|e| ConfigError {
            var: "API_ADDR".into(),
            value: raw_addr.to_owned(),
            reason: format!("{e} (expected ip:port, e.g. 0.0.0.0:8000)"),
        })?;
        if let Some(port) = opt::<u16>(vars, "PORT")? {
            addr.set_port(port);
        }
        let token = vars
            .get("API_TOKEN")
            .filter(|t| !t.is_empty())
            .map(|t| ApiToken(t.clone()));
        let max_body_bytes = at_least_one(vars, "API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        let threads = at_least_one(vars, "API_THREADS", DEFAULT_THREADS)?;
        let drain =
            std::time::Duration::from_secs(opt::<u64>(vars, "API_DRAIN_SECONDS")?.unwrap_or(0));
        Ok(Self {
            addr,
            token,
            max_body_bytes,
            threads,
            drain,
        })
    }
}

/// The API bearer token. Its `Debug` output is redacted so it never reaches a log.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token (tests and embedders; the process reads `API_TOKEN`).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Compare `presented` with the token in constant time (for equal lengths; a length
    /// mismatch answers at once, which reveals only the length).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }

    /// The token itself, for deriving the console's session key; never for logging.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = ApiConfig::from_vars(&HashMap::new()).expect("valid");
        assert_eq!(c.addr, DEFAULT_ADDR.parse().expect("valid"));
        assert!(c.token.is_none());
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.threads, 1);
    }

    #[test]
    fn port_overrides_the_port_of_api_addr() {
        let c = ApiConfig::from_vars(&vars(&[("API_ADDR", "0.0.0.0:9000"), ("PORT", "5001")]))
            .expect("valid");
        assert_eq!(c.addr, "0.0.0.0:5001".parse().expect("valid"));
    }

    #[test]
    fn bad_values_fail_naming_the_variable() {
        for (var, value) in [
            ("API_ADDR", "localhost"),
            ("PORT", "http"),
            ("API_MAX_BODY_BYTES", "-1"),
            ("API_MAX_BODY_BYTES", "0"),
            ("API_THREADS", "0"),
            ("API_THREADS", "many"),
        ] {
            let e = ApiConfig::from_vars(&vars(&[(var, value)])).expect_err("must be refused");
            assert_eq!(e.var, var);
            assert!(e.to_string().contains(var), "{e}");
        }
    }

    #[test]
    fn the_token_matches_only_itself_and_never_prints() {
        let c = ApiConfig::from_vars(&vars(&[("API_TOKEN", "s3cret")])).expect("valid");
        let t = c.token.expect("token set");
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3creT"));
        assert!(!t.matches(b"s3cret2"));
        assert!(!t.matches(b""));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
