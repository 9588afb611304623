//! The OpenAPI 3.1 document, generated from the code: each handler's `#[utoipa::path]`, the request
//! and response types' `ToSchema`, and the reusable error responses (`responses.rs`). Served at
//! `GET /openapi.json` without authentication.
//!
//! A handler's `responses(...)` lists every status it can answer. Errors always carry the
//! [`ErrorEnvelope`]; the reusable responses in [`crate::responses`] add the headers that go with them
//! (`Retry-After` on 503, `WWW-Authenticate` on 401). Adding a route means annotating its handler
//! and adding it to [`ApiDoc`]'s `paths(...)`.

use std::sync::LazyLock;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi as Document, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorEnvelope};
use crate::state::AppState;
use crate::{responses, routes};

/// The bearer security scheme's name in the document.
pub const BEARER: &str = "bearer";

/// The document's source: every route, schema and reusable response.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Celeriac API",
        description = "Enqueue and inspect jobs, track page views and sessions, read analytics. \
            Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
    ),
    paths(
        routes::jobs::enqueue,
        routes::jobs::status,
        routes::jobs::revoke,
        routes::queues::list,
        routes::queues::pause,
        routes::queues::resume,
        routes::schedules::list,
        routes::workers::list,
        routes::history::history,
        routes::queue_jobs::list,
        routes::queue_jobs::requeue,
        routes::queue_jobs::discard,
        routes::queue_jobs::run_now,
        routes::track::pageview,
        routes::track::pageviews,
        routes::beacon::beacon,
        routes::beacon::script,
        routes::sessions::login,
        routes::sessions::logout,
        routes::events::event,
        routes::events::conversion,
        routes::communities::visitors,
        routes::analytics::conversions,
        routes::analytics::top_pages,
        routes::analytics::durations,
        routes::anonymous::erase,
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::scrape,
        openapi_json,
    ),
    components(
        schemas(ErrorEnvelope, ErrorBody),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::NotFound,
            responses::Conflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::Unprocessable,
            responses::Internal,
            responses::Unavailable,
        ),
    ),
    modifiers(&BearerScheme, &JobNames),
    tags(
        (name = "jobs", description = "Enqueue jobs and read their status"),
        (name = "queues", description = "Queue counts"),
        (name = "tracking", description = "Page views, community visitors, erasure"),
        (name = "sessions", description = "Login and logout"),
        (name = "events", description = "User events and sign-up conversions"),
        (name = "analytics", description = "Conversions, top pages, session durations"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
pub struct ApiDoc;

/// Declares the bearer scheme that the `/v1` operations require.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`API_TOKEN`; required when the server sets it".to_owned(),
                    ))
                    .build(),
            ),
        );
    }
}

/// Narrows every `{name}` job path parameter to the registry's job names.
struct JobNames;

impl Modify for JobNames {
    fn modify(&self, doc: &mut Document) {
        let names = domain::registry::JOBS.iter().map(|spec| spec.name);
        let schema: RefOr<Schema> = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into();
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/jobs/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let params = operation.parameters.iter_mut().flatten();
                for param in params {
                    if let RefOr::T(p) = param
                        && p.name == "name"
                    {
                        p.schema = Some(schema.clone());
                    }
                }
            }
        }
    }
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);

/// The document, built once.
pub fn document() -> &'static Document {
    &DOCUMENT
}

/// The `GET /openapi.json` route (unauthenticated).
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
pub async fn openapi_json() -> Json<&'static Document> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_operations_require_the_bearer_scheme_and_others_do_not() {
        let doc = document();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.delete].into_iter().flatten() {
                seen += 1;
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                // The beacon is public: a browser holds no token.
                let needs_token = path.starts_with("/v1/") && !path.starts_with("/v1/beacon");
                assert_eq!(secured, needs_token, "{path}");
                let codes: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
                if needs_token {
                    for code in ["401", "500", "503"] {
                        assert!(codes.contains(&code), "{path} lacks {code}: {codes:?}");
                    }
                }
            }
        }
        assert_eq!(seen, 30);
    }

    #[test]
    fn job_names_are_enumerated_from_the_registry() {
        let json = serde_json::to_value(document()).expect("serializable");
        let param = &json["paths"]["/v1/jobs/{name}"]["post"]["parameters"][0];
        assert_eq!(param["name"], "name");
        let names = param["schema"]["enum"].as_array().expect("enum");
        assert_eq!(names.len(), domain::registry::JOBS.len());
        assert!(names.iter().any(|n| n == "persist_anonymous_session"));
    }
}
