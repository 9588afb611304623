//! The periodic jobs: each one's cron, last and next tick, and the scheduler copy that enqueued
//! the last one (as `GET /v1/schedules` reports them).

use axum::Json;
use axum::extract::State;
use maud::html;

use super::ConsoleError;
use super::layout::{self, Section};
use super::session::Viewer;
use crate::routes::schedules;
use crate::state::AppState;

fn at(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// `GET /console/schedules`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
) -> Result<layout::Page, ConsoleError> {
    let Json(list) = schedules::list(State(state)).await?;
    let content = html! {
        div.table-wrap #schedules data-live {
            table {
                caption.sr-only { "Periodic jobs" }
                thead {
                    tr {
                        th scope="col" { "Job" }
                        th scope="col" { "Cron (UTC, with seconds)" }
                        th scope="col" { "Last tick" }
                        th scope="col" { "Next tick" }
                        th.hide-narrow scope="col" { "Enqueued by" }
                    }
                }
                tbody {
                    @for s in &list.schedules {
                        tr {
                            th scope="row" { a href=(format!("/console/queues/{}", s.job)) { (s.job) } }
                            td { code { (s.cron) } @if !s.published { " " span.badge { "default: no scheduler published it" } } }
                            td { (at(s.last_tick)) }
                            td { (at(s.next_tick)) }
                            td.hide-narrow { (s.enqueued_by.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "Schedules",
        &viewer,
        Some(Section::Schedules),
        None,
        content,
    ))
}
