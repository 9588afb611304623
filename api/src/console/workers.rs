//! The fleet's processes: every live worker and scheduler with its queues, concurrency, jobs in
//! flight and counts, from their heartbeats (`domain::workers`).

use axum::extract::State;
use domain::workers;
use maud::html;

use super::ConsoleError;
use super::layout::{self, Section};
use super::session::Viewer;
use crate::state::AppState;

/// `GET /console/workers`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
) -> Result<layout::Page, ConsoleError> {
    let live = workers::live(&mut state.redis.clone(), &state.settings.namespace)
        .await
        .map_err(queue::QueueError::from)?;
    let content = html! {
        p.muted {
            "Each process heartbeats every " (workers::HEARTBEAT.as_secs()) " s; one that stops is gone after "
            (workers::EXPIRES.as_secs()) " s."
        }
        div.table-wrap #workers data-live {
            @if live.is_empty() {
                p { "No worker or scheduler is running." }
            } @else {
                table {
                    caption.sr-only { "Live processes" }
                    thead {
                        tr {
                            th scope="col" { "Process" }
                            th scope="col" { "Kind" }
                            th.hide-narrow scope="col" { "Version" }
                            th.hide-narrow scope="col" { "Started" }
                            th.num scope="col" { "In flight" }
                            th.num scope="col" { "Succeeded" }
                            th.num scope="col" { "Failed" }
                            th.hide-narrow scope="col" { "Queues" }
                            th.hide-narrow scope="col" { "Heartbeat" }
                        }
                    }
                    tbody {
                        @for w in &live {
                            tr {
                                th scope="row" { code { (w.id) } }
                                td { (w.kind) }
                                td.hide-narrow { (w.version) }
                                td.hide-narrow { (w.started_at.format("%Y-%m-%d %H:%M:%S")) }
                                td.num { (w.in_flight) " / " (w.concurrency) }
                                td.num { (w.processed) }
                                td.num { (w.failed) }
                                td.hide-narrow { (w.queues.join(", ")) }
                                td.hide-narrow { (w.heartbeat_at.format("%H:%M:%S")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "Workers",
        &viewer,
        Some(Section::Workers),
        None,
        content,
    ))
}
