//! A queue: its counts, its jobs by state a page at a time (with arguments, attempts, last error
//! and times), pause and resume, and the actions on jobs: requeue or discard dead ones (some or
//! all), run waiting ones now.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use queue::{JobInfo, ListState};
use serde::Deserialize;

use super::ConsoleError;
use super::form::Form;
use super::layout::{self, Section};
use super::session::Viewer;
use crate::routes::queue_jobs::{ListedState, MAX_IDS, MAX_OFFSET, run_now_ids};
use crate::state::AppState;

/// Jobs per console page.
const PAGE: usize = 50;

/// The queue page's query (every field optional; a bad one is a 400 page naming it).
#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    state: Option<String>,
    offset: Option<String>,
    done: Option<String>,
    n: Option<u64>,
}

fn parse_state(s: Option<&str>) -> Result<ListedState, ConsoleError> {
    let s = s.unwrap_or("queued");
    ListedState::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| {
            ConsoleError::bad_form(
                "state",
                "must be queued, scheduled, retrying, running, done or dead",
            )
        })
}

/// A time as the console shows it.
pub fn when(ms: Option<i64>) -> String {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// A job's arguments, pretty when they are JSON.
pub fn pretty_args(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// `s` as one URL path segment: nothing in it can reach another path or the query, and it is
/// never `.` or `..`.
pub fn seg(s: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    if encoded.bytes().all(|b| b == b'.') {
        encoded.replace('.', "%2E")
    } else {
        encoded
    }
}

fn job_row(name: &str, j: &JobInfo, selectable: bool) -> Markup {
    html! {
        tr {
            @if selectable {
                td {
                    input type="checkbox" name="ids" value=(j.id) id=(format!("sel-{}", j.id))
                        aria-label=(format!("Select job {}", j.id));
                }
            }
            td { a href=(format!("/console/queues/{name}/jobs/{}", seg(&j.id))) { code { (short(&j.id, 13)) } } }
            td.num { (j.attempts) }
            td { code { (short(&j.payload, 80)) } }
            td.error-text { (j.last_error.as_deref().map(|e| short(e, 120)).unwrap_or_default()) }
            td.hide-narrow { (when(j.status_ms)) }
        }
    }
}

/// `GET /console/queues/{name}`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> Result<layout::Page, ConsoleError> {
    let queue = state.queue(&name)?;
    let listed = parse_state(q.state.as_deref())?;
    let offset = match q.offset.as_deref() {
        None | Some("") => 0,
        Some(o) => o
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= MAX_OFFSET)
            .ok_or_else(|| ConsoleError::bad_form("offset", "must be a whole number"))?,
    };
    let (stats, jobs) = futures::future::join(
        queue.stats(),
        queue.list(ListState::from(listed), offset, PAGE),
    )
    .await;
    let (stats, jobs) = (stats?, jobs?);
    let count = |s: ListedState| match s {
        ListedState::Queued => Some(stats.queued),
        ListedState::Scheduled => Some(stats.scheduled),
        ListedState::Retrying => None,
        ListedState::Running => Some(stats.running),
        ListedState::Done => Some(stats.done),
        ListedState::Dead => Some(stats.dead),
    };
    let base = format!("/console/queues/{name}");
    let selectable = matches!(
        listed,
        ListedState::Dead | ListedState::Scheduled | ListedState::Retrying
    );
    let content = html! {
        div.actions {
            @if stats.paused {
                span.badge.paused { "paused" }
                form method="post" action=(format!("{base}/resume")) {
                    (layout::csrf(&viewer))
                    button type="submit" { "Resume queue" }
                }
            } @else {
                span.badge.ok { "active" }
                form method="post" action=(format!("{base}/pause")) {
                    (layout::csrf(&viewer))
                    button.secondary type="submit" { "Pause queue" }
                }
            }
            span.muted { "Oldest waiting job: " (format!("{:.1} s", stats.oldest_waiting_seconds)) }
        }
        nav aria-label="Job states" {
            ul.tabs #tabs data-live {
                @for s in ListedState::ALL {
                    li {
                        a href=(format!("{base}?state={}", s.as_str()))
                            aria-current=[(s == listed).then_some("page")] {
                            (s.as_str())
                            @if let Some(n) = count(s) { " (" (n) ")" }
                        }
                    }
                }
            }
        }
        form #jobs method="post" action=(format!("{base}/jobs")) {
            (layout::csrf(&viewer))
            input type="hidden" name="state" value=(listed.as_str());
            @if selectable && !jobs.jobs.is_empty() {
                div.actions {
                    @if listed == ListedState::Dead {
                        button type="submit" name="action" value="requeue" { "Requeue selected" }
                        button.danger type="submit" name="action" value="discard"
                            data-confirm="Discard the selected dead jobs for good?" { "Discard selected" }
                        button.secondary type="submit" name="action" value="requeue-all"
                            data-confirm="Requeue every dead job of this queue?" { "Requeue all dead" }
                        button.danger type="submit" name="action" value="discard-all"
                            data-confirm="Discard every dead job of this queue for good?" { "Discard all dead" }
                    } @else {
                        button type="submit" name="action" value="run-now" { "Run selected now" }
                    }
                }
            }
            p.muted #page-info {
                @match jobs.total {
                    Some(t) => { (jobs.jobs.len()) " of " (t) " " (listed.as_str()) " jobs, from " (offset + usize::from(!jobs.jobs.is_empty())) "." }
                    None => { (jobs.jobs.len()) " retrying jobs among scheduled entries " (offset) " onwards." }
                }
            }
            @if jobs.jobs.is_empty() {
                p { "No " (listed.as_str()) " jobs here." }
            } @else {
                div.table-wrap {
                    table {
                        caption.sr-only { (listed.as_str()) " jobs of " (name) }
                        thead {
                            tr {
                                @if selectable {
                                    th scope="col" {
                                        input type="checkbox" data-select-all aria-label="Select every job on this page";
                                    }
                                }
                                th scope="col" { "Job" }
                                th.num scope="col" { "Attempts" }
                                th scope="col" { "Arguments" }
                                th scope="col" { "Last error" }
                                th.hide-narrow scope="col" {
                                    @match listed {
                                        ListedState::Scheduled | ListedState::Retrying => "Due",
                                        ListedState::Running => "Lease ends",
                                        ListedState::Done | ListedState::Dead => "Finished",
                                        ListedState::Queued => "—",
                                    }
                                }
                            }
                        }
                        tbody { @for j in &jobs.jobs { (job_row(&name, j, selectable)) } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if offset > 0 && listed != ListedState::Retrying {
                a href=(format!("{base}?state={}&offset={}", listed.as_str(), offset.saturating_sub(PAGE))) { "← Previous" }
            }
            @if let Some(next) = jobs.next {
                a href=(format!("{base}?state={}&offset={next}", listed.as_str())) { "Next →" }
            }
        }
    };
    let flash = super::flash(q.done.as_deref(), q.n);
    Ok(layout::page(
        &format!("Queue {name}"),
        &viewer,
        Some(Section::Overview),
        flash.as_deref(),
        content,
    ))
}

/// `POST /console/queues/{name}/pause`.
pub async fn pause(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    set_paused(&viewer, &state, &name, &body, true).await
}

/// `POST /console/queues/{name}/resume`.
pub async fn resume(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    set_paused(&viewer, &state, &name, &body, false).await
}

async fn set_paused(
    viewer: &Viewer,
    state: &AppState,
    name: &str,
    body: &[u8],
    paused: bool,
) -> Result<Response, ConsoleError> {
    viewer.check(&Form::parse(body))?;
    let queue = state.queue(name)?;
    let done = if paused {
        queue.pause().await?;
        "paused"
    } else {
        queue.resume().await?;
        "resumed"
    };
    tracing::info!(queue = %name, done, "queue paused or resumed from the console");
    Ok(Redirect::to(&format!("/console/queues/{name}?done={done}")).into_response())
}

/// `POST /console/queues/{name}/jobs`: `action` (requeue, discard, run-now, requeue-all,
/// discard-all) on the `ids` selected; back to the page it came from (`state`, or `back=job`).
pub async fn act(
    viewer: Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form = Form::parse(&body);
    viewer.check(&form)?;
    let queue = state.queue(&name)?;
    let ids = form.all("ids");
    if ids.len() > MAX_IDS {
        return Err(ConsoleError::bad_form(
            "ids",
            &format!("at most {MAX_IDS} jobs at once"),
        ));
    }
    let st = parse_state(form.get("state"))?;
    let action = form.get("action").unwrap_or_default();
    let needs_ids = matches!(action, "requeue" | "discard" | "run-now");
    if needs_ids && ids.is_empty() {
        return Err(ConsoleError::bad_form("ids", "select at least one job"));
    }
    let (done, n) = match action {
        "requeue" => ("requeued", queue.requeue_dead_many(&ids).await?),
        "discard" => ("discarded", queue.discard_dead_many(&ids).await?),
        "run-now" => ("run-now", run_now_ids(queue, ids).await?.done),
        "requeue-all" => ("requeued", queue.requeue_all_dead().await?),
        "discard-all" => ("discarded", queue.discard_all_dead().await?),
        _ => {
            return Err(ConsoleError::bad_form(
                "action",
                "must be requeue, discard, run-now, requeue-all or discard-all",
            ));
        }
    };
    tracing::info!(queue = %name, action, jobs = n, "jobs acted on from the console");
    Ok(Redirect::to(&format!(
        "/console/queues/{name}?state={}&done={done}&n={n}",
        st.as_str()
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn a_segment_stays_one_segment() {
        assert_eq!(seg("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("01m8x.z"), "01m8x.z");
    }
}
