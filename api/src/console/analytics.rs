//! The site's analytics: live visitors of the communities asked for, the most viewed pages,
//! sign-up conversions and session lengths over a chosen number of days, with charts.
//!
//! Communities have no index in Redis (the seed keeps only `community:{id}:visitors`), so the
//! page shows the ones named in its form (up to [`MAX_COMMUNITIES`] ids).

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;
use tracking::analytics::Period;
use uuid::Uuid;

use super::ConsoleError;
use super::chart;
use super::layout::{self, Section};
use super::session::Viewer;
use crate::error::ApiError;
use crate::state::AppState;

/// The most communities one page shows.
pub const MAX_COMMUNITIES: usize = 10;

/// The analytics page's query.
#[derive(Debug, Deserialize)]
pub struct AnalyticsQuery {
    days: Option<String>,
    communities: Option<String>,
}

const RANGES: [(u32, &str); 5] = [
    (1, "last day"),
    (7, "last 7 days"),
    (30, "last 30 days"),
    (90, "last 90 days"),
    (365, "last year"),
];

/// `GET /console/analytics?days=7&communities=<uuid> <uuid>`.
pub async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    Query(q): Query<AnalyticsQuery>,
) -> Result<layout::Page, ConsoleError> {
    let days = match q.days.as_deref() {
        None | Some("") => 7,
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| ConsoleError::bad_form("days", "must be 1 to 3650"))?,
    };
    let raw = q.communities.clone().unwrap_or_default();
    let ids = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ConsoleError::bad_form("communities", "each must be a UUID"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > MAX_COMMUNITIES {
        return Err(ConsoleError::bad_form(
            "communities",
            &format!("at most {MAX_COMMUNITIES} at once"),
        ));
    }
    let period = || Period { days, limit: 10 };
    let t = &state.tracker;
    let (pages, conv, durations) = futures::future::join3(
        t.top_pages(period()),
        t.conversions(period()),
        t.session_durations(period()),
    )
    .await;
    let (pages, conv, durations) = (
        pages.map_err(ApiError::from)?,
        conv.map_err(ApiError::from)?,
        durations.map_err(ApiError::from)?,
    );
    let mut visitors = Vec::new();
    for id in &ids {
        visitors.push((id, t.community_visitors(*id).await.map_err(ApiError::from)?));
    }
    let page_rows: Vec<(String, f64)> = pages
        .pages
        .iter()
        .map(|p| (p.url_path.clone(), p.total_views as f64))
        .collect();
    let landing: Vec<(String, f64)> = conv
        .top_landing_pages
        .iter()
        .map(|r| (r.key.clone(), r.count as f64))
        .collect();
    let lengths = vec![
        (
            format!("signed in ({})", durations.authenticated_sessions),
            durations.authenticated_average_seconds / 60.0,
        ),
        (
            format!("anonymous ({})", durations.anonymous_sessions),
            durations.anonymous_average_seconds / 60.0,
        ),
    ];
    let content = html! {
        form.inline method="get" action="/console/analytics" aria-label="Period and communities" {
            label {
                "Period"
                select name="days" {
                    @for (d, label) in RANGES {
                        option value=(d) selected[d == days] { (label) }
                    }
                    @if !RANGES.iter().any(|(d, _)| *d == days) {
                        option value=(days) selected { "last " (days) " days" }
                    }
                }
            }
            label {
                "Community ids (live visitors)"
                input type="text" name="communities" value=(raw) size="40"
                    placeholder="uuid, uuid" autocomplete="off";
            }
            button type="submit" { "Show" }
        }
        h2 { "Live visitors" }
        section #visitors data-live aria-label="Live visitors per community" {
            @if visitors.is_empty() {
                p.muted { "Name one or more community ids above to watch their visitors of the last 5 minutes." }
            } @else {
                (chart::bars(
                    "visitors-chart",
                    "Visitors in the last 5 minutes, per community",
                    "",
                    &visitors.iter().map(|(id, v)| (id.to_string(), v.total_visitors as f64)).collect::<Vec<_>>(),
                ))
                div.table-wrap {
                    table {
                        caption.sr-only { "Live visitors" }
                        thead { tr {
                            th scope="col" { "Community" }
                            th.num scope="col" { "Visitors" }
                            th.num scope="col" { "Signed in" }
                            th.num scope="col" { "Anonymous" }
                        } }
                        tbody {
                            @for (id, v) in &visitors {
                                tr {
                                    th scope="row" { code { (id) } }
                                    td.num { (v.total_visitors) }
                                    td.num { (v.authenticated_visitors) " (" (format!("{:.0}", v.authenticated_percentage)) " %)" }
                                    td.num { (v.anonymous_visitors) " (" (format!("{:.0}", v.anonymous_percentage)) " %)" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Top pages" }
        p.muted { "Since " (pages.from) " (daily aggregates)." }
        (chart::bars("top-pages", "Views per page", "", &page_rows))
        h2 { "Conversions" }
        div.cards #conversions {
            div.card { div.value { (conv.anonymous_sessions) } div.label { "anonymous sessions" } }
            div.card { div.value { (conv.conversions) } div.label { "signed up" } }
            div.card { div.value { (format!("{:.1} %", conv.conversion_rate)) } div.label { "conversion rate" } }
            div.card { div.value { (format!("{:.1}", conv.average_pages_before_signup)) } div.label { "pages before signing up" } }
        }
        (chart::bars("landing-pages", "Landing pages of visitors who signed up", "", &landing))
        h2 { "Session lengths" }
        (chart::bars("session-lengths", "Mean length of ended sessions, minutes", " min", &lengths))
    };
    Ok(layout::page(
        "Analytics",
        &viewer,
        Some(Section::Analytics),
        None,
        content,
    ))
}
