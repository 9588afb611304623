//! The overview: every queue with its live counts, and throughput, failures and run time over
//! the last hour (per minute) and the last day (per hour), from the workers' history.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use domain::workers;
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::chart::{self, Series};
use super::layout::{self, Section};
use super::session::Viewer;
use crate::state::AppState;

/// The overview's query: a message after an action.
#[derive(Debug, Deserialize)]
pub struct Flash {
    done: Option<String>,
    n: Option<u64>,
}

/// Totals of one history bucket, over every job type.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    succeeded: f64,
    failed: f64,
    dead: f64,
    ms: f64,
}

impl Bucket {
    fn from_fields(fields: BTreeMap<String, u64>) -> Self {
        let mut b = Self::default();
        for (field, n) in fields {
            let n = n as f64;
            match field.rsplit_once(':').map(|(_, what)| what) {
                Some("succeeded") => b.succeeded += n,
                Some("failed") => b.failed += n,
                Some("dead") => b.dead += n,
                Some("ms") => b.ms += n,
                _ => {}
            }
        }
        b
    }

    fn mean_ms(self) -> f64 {
        let runs = self.succeeded + self.failed + self.dead;
        if runs > 0.0 { self.ms / runs } else { 0.0 }
    }
}

/// The last hour by minute and the last day by hour, in one pipeline of 84 reads.
async fn history(
    state: &AppState,
) -> Result<(Vec<(i64, Bucket)>, Vec<(i64, Bucket)>), ConsoleError> {
    let ns = &state.settings.namespace;
    let now = Utc::now().timestamp();
    let minutes: Vec<i64> = (now / 60 - 59..=now / 60).collect();
    let hours: Vec<i64> = (now / 3600 - 23..=now / 3600).collect();
    let mut pipe = redis::pipe();
    for m in &minutes {
        pipe.hgetall(workers::history_key(ns, *m));
    }
    for h in &hours {
        pipe.hgetall(workers::history_hour_key(ns, *h));
    }
    let rows: Vec<BTreeMap<String, u64>> = pipe
        .query_async(&mut state.redis.clone())
        .await
        .map_err(queue::QueueError::from)?;
    let mut rows = rows.into_iter().map(Bucket::from_fields);
    let by_minute = minutes
        .iter()
        .map(|m| (*m * 60, rows.next().unwrap_or_default()))
        .collect();
    let by_hour = hours
        .iter()
        .map(|h| (*h * 3600, rows.next().unwrap_or_default()))
        .collect();
    Ok((by_minute, by_hour))
}

fn clock(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

fn charts(id: &str, period: &str, buckets: &[(i64, Bucket)]) -> Markup {
    let labels: Vec<String> = buckets.iter().map(|(t, _)| clock(*t)).collect();
    let pick = |f: fn(&Bucket) -> f64| buckets.iter().map(|(_, b)| f(b)).collect::<Vec<_>>();
    html! {
        (chart::lines(
            &format!("{id}-throughput"),
            &format!("Jobs finished per {period} (UTC)"),
            &labels,
            &[
                Series { name: "succeeded", values: pick(|b| b.succeeded) },
                Series { name: "failed (retried or dead)", values: pick(|b| b.failed + b.dead) },
            ],
        ))
        (chart::lines(
            &format!("{id}-latency"),
            &format!("Mean run time per {period}, ms (UTC)"),
            &labels,
            &[Series { name: "mean ms", values: pick(|b| b.mean_ms()) }],
        ))
    }
}

/// `GET /console`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    Query(flash): Query<Flash>,
) -> Result<layout::Page, ConsoleError> {
    let reads = state
        .queues
        .all()
        .map(|q| async move { (q.name(), q.stats().await) });
    let mut queues = Vec::new();
    for (name, stats) in futures::future::join_all(reads).await {
        queues.push((name, stats?));
    }
    let (by_minute, by_hour) = history(&state).await?;
    let hour_total: f64 = by_minute.iter().map(|(_, b)| b.succeeded).sum();
    let hour_failed: f64 = by_minute.iter().map(|(_, b)| b.failed + b.dead).sum();
    let waiting: u64 = queues.iter().map(|(_, s)| s.queued).sum();
    let dead: u64 = queues.iter().map(|(_, s)| s.dead).sum();
    let content = html! {
        section #summary data-live aria-label="Totals" {
            div.cards {
                div.card { div.value { (waiting) } div.label { "jobs waiting" } }
                div.card { div.value { (queues.iter().map(|(_, s)| s.running).sum::<u64>()) } div.label { "running" } }
                div.card { div.value { (hour_total) } div.label { "succeeded in the last hour" } }
                div.card { div.value { (hour_failed) } div.label { "failed attempts in the last hour" } }
                div.card { div.value { (dead) } div.label { "dead jobs kept" } }
            }
        }
        h2 #queues-heading { "Queues" }
        div.table-wrap #queues data-live {
            table aria-labelledby="queues-heading" {
                thead {
                    tr {
                        th scope="col" { "Queue" }
                        th.num scope="col" { "Queued" }
                        th.num scope="col" { "Scheduled" }
                        th.num scope="col" { "Running" }
                        th.num.hide-narrow scope="col" { "Done" }
                        th.num scope="col" { "Dead" }
                        th.num.hide-narrow scope="col" { "Oldest waiting" }
                        th scope="col" { "State" }
                    }
                }
                tbody {
                    @for (name, s) in &queues {
                        tr {
                            th scope="row" { a href=(format!("/console/queues/{name}")) { (name) } }
                            td.num { (s.queued) }
                            td.num { (s.scheduled) }
                            td.num { (s.running) }
                            td.num.hide-narrow { (s.done) }
                            td.num {
                                @if s.dead > 0 {
                                    a href=(format!("/console/queues/{name}?state=dead")) { (s.dead) }
                                } @else { "0" }
                            }
                            td.num.hide-narrow { (format!("{:.1} s", s.oldest_waiting_seconds)) }
                            td {
                                @if s.paused { span.badge.paused { "paused" } } @else { span.badge.ok { "active" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "The last hour" }
        div.charts #hour-charts data-live { (charts("hour", "minute", &by_minute)) }
        h2 { "The last day" }
        div.charts #day-charts data-live { (charts("day", "hour", &by_hour)) }
    };
    let flash = super::flash(flash.done.as_deref(), flash.n);
    Ok(layout::page(
        "Overview",
        &viewer,
        Some(Section::Overview),
        flash.as_deref(),
        content,
    ))
}
