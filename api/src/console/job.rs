//! One job: where it stands, its arguments, attempts, last error and times, and what can be done
//! with it (requeue or discard a dead job, run a waiting one now).

use axum::extract::{Path, State};
use maud::html;
use queue::JobStatus;

use super::ConsoleError;
use super::layout::{self, Section};
use super::queue_page::{pretty_args, when};
use super::session::Viewer;
use crate::state::AppState;

fn status_name(s: JobStatus, attempts: u32) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::Scheduled if attempts > 0 => "retrying",
        JobStatus::Scheduled => "scheduled",
        JobStatus::Running => "running",
        JobStatus::Done => "done",
        JobStatus::Dead => "dead",
    }
}

/// `GET /console/queues/{name}/jobs/{id}`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<layout::Page, ConsoleError> {
    let queue = state.queue(&name)?;
    let job = queue.job(&id).await?;
    let action = format!("/console/queues/{name}/jobs");
    let content = match &job {
        None => html! {
            p { "No job " code { (id) } " in " (name) ": it never existed, or it finished and its retention ended." }
            p { a href=(format!("/console/queues/{name}")) { "Back to the queue" } }
        },
        Some(j) => {
            let status = status_name(j.status, j.attempts);
            html! {
                section #job-facts data-live aria-label="The job" {
                    dl.facts {
                        dt { "Id" } dd { code { (j.id) } }
                        dt { "Queue" } dd { a href=(format!("/console/queues/{name}")) { (name) } }
                        dt { "State" } dd { span.badge.(status) #job-state { (status) } }
                        dt { "Attempts" } dd { (j.attempts) }
                        dt { "Enqueued" } dd { (when((j.since_ms > 0).then_some(j.since_ms))) }
                        dt { @match j.status {
                            JobStatus::Scheduled => "Due",
                            JobStatus::Running => "Lease ends",
                            _ => "Finished",
                        } }
                        dd { (when(j.status_ms)) }
                        dt { "Last error" }
                        dd.error-text #job-error { (j.last_error.as_deref().unwrap_or("—")) }
                    }
                }
                h2 { "Arguments" }
                pre { code { (pretty_args(&j.payload)) } }
                div.actions {
                    @if j.status == JobStatus::Dead {
                        form method="post" action=(action) {
                            (layout::csrf(&viewer))
                            input type="hidden" name="ids" value=(j.id);
                            input type="hidden" name="state" value="dead";
                            button type="submit" name="action" value="requeue" { "Requeue" }
                            " "
                            button.danger type="submit" name="action" value="discard"
                                data-confirm="Discard this job for good?" { "Discard" }
                        }
                    }
                    @if j.status == JobStatus::Scheduled {
                        form method="post" action=(action) {
                            (layout::csrf(&viewer))
                            input type="hidden" name="ids" value=(j.id);
                            input type="hidden" name="state" value=(status);
                            button type="submit" name="action" value="run-now" { "Run now" }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "Job",
        &viewer,
        Some(Section::Overview),
        None,
        content,
    ))
}
