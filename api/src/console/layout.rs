//! The page frame every console page shares: head, skip link, navigation, flash message, footer.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Viewer;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Queues and throughput.
    Overview,
    /// Worker and scheduler processes.
    Workers,
    /// Periodic jobs.
    Schedules,
    /// The site's analytics.
    Analytics,
}

const NAV: [(Section, &str, &str); 4] = [
    (Section::Overview, "/console", "Overview"),
    (Section::Workers, "/console/workers", "Workers"),
    (Section::Schedules, "/console/schedules", "Schedules"),
    (Section::Analytics, "/console/analytics", "Analytics"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Celeriac" }
            link rel="icon" href=(assets::ICON_URL) type="image/svg+xml";
            link rel="stylesheet" href=(assets::CSS_URL);
            script src=(assets::JS_URL) defer {}
        }
    }
}

/// A rendered page.
pub type Page = axum::response::Html<String>;

/// A page without navigation (the login form, errors before sign-in).
pub fn bare(title: &str, content: Markup) -> Page {
    Page::from(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    main #main .narrow { (content) }
                }
            }
        }
        .into_string(),
    )
}

/// A console page: `title`, the current `section`, an optional flash message and `content`.
pub fn page(
    title: &str,
    viewer: &Viewer,
    section: Option<Section>,
    flash: Option<&str>,
    content: Markup,
) -> Page {
    Page::from(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "Celeriac" }
                    nav aria-label="Console" {
                        ul {
                            @for (s, href, label) in NAV {
                                li {
                                    a href=(href) aria-current=[(section == Some(s)).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    div.tools {
                        button.live type="button" data-live-toggle aria-pressed="true" { "Live updates on" }
                        @if viewer.signed_in {
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(f) = flash {
                        p.flash role="status" { (f) }
                    }
                    (content)
                }
            }
        }
    }.into_string())
}

/// The hidden CSRF field every form carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}
