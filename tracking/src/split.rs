//! On a Redis Cluster, a page view one slot at a time. On one server a view is one script run
//! (`views.lua`, `auth.lua`); a cluster refuses a script whose keys span slots, so the view runs
//! as steps, each whole in its own slot, in an order that loses no data if the process dies
//! between two of them:
//! 1. the visitor's step (`visit.lua`, the visitor shard's slot): the session document, the
//!    buffered view, the open-session list and the footprint (naming every set the next steps
//!    may add the visitor to, so an erasure finds them even if a later step never runs);
//! 2. the day's counters (`count_one.lua`, the day's slot), unless the visitor is a bot;
//! 3. the community visit (`community.lua` without the footprint, the community's slot);
//! 4. the jobs, pushed to their queues by id (the finalize job's id is the session's, the
//!    persist job's `<session>-<page>`), so a push repeated after an error is one job.
//!
//! A process that dies after step 1 leaves a counter or a community visit uncounted, never a
//! view unwritten: the session is on its shard's open list, where the idle sweep
//! (`finalize_idle_sessions`) finds it and enqueues its finalize; a missing persist is covered by
//! the finalize, which writes every buffered view. `docs/redis-cluster.md` has the layout.

use std::time::Duration;

use domain::args::JobArgs as _;
use domain::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};
use domain::keys::{self, Fingerprint, PageKeys};
use domain::queues::EnqueueError;
use queue::{NewJob, When};

use crate::scripts;
use crate::{TrackError, Tracker};

/// What a view counts: its page's keys and the overflow path's, of the view's day.
pub(crate) struct Count<'a> {
    pub(crate) page: &'a PageKeys,
    pub(crate) other: &'a PageKeys,
    pub(crate) path: &'a str,
    pub(crate) page_type: &'a str,
    pub(crate) visitor: &'a str,
    /// `anonymous` or `authenticated`.
    pub(crate) kind: &'static str,
}

/// Step 2: count one view into the day's counters (the day's slot).
pub(crate) async fn count(t: &Tracker, c: &Count<'_>) -> Result<(), TrackError> {
    let _: String = scripts::COUNT
        .key(&c.page.paths)
        .key(&c.page.counters)
        .key(&c.page.visitors)
        .key(&c.page.sketch)
        .key(&c.other.counters)
        .key(&c.other.visitors)
        .key(&c.other.sketch)
        .arg(c.path)
        .arg(c.page_type)
        .arg(c.visitor)
        .arg(c.kind)
        .arg(t.config.counters_ttl.as_secs())
        .arg(t.config.max_paths_per_day)
        .arg(t.config.max_exact_visitors)
        .invoke_async(&mut t.redis.clone())
        .await?;
    Ok(())
}

/// Before a view may add `visitor` to the sets `places` name: record them in its footprint (the
/// footprint's own slot), a day longer than the analytics keys live.
pub(crate) async fn note_footprint(
    t: &Tracker,
    visitor: &str,
    places: &[&str],
) -> Result<(), TrackError> {
    if places.is_empty() {
        return Ok(());
    }
    let footprint = keys::footprint(visitor);
    let mut pipe = redis::pipe();
    pipe.sadd(&footprint, places)
        .ignore()
        .expire(
            &footprint,
            (t.config.counters_ttl.as_secs() + 86_400) as i64,
        )
        .ignore();
    let () = pipe.query_async(&mut t.redis.clone()).await?;
    Ok(())
}

/// The footprint entries of a view of `c`'s page (both visitor sets it may join: the path's, or
/// the overflow path's past the day's cap) and of `community` (its visitor hash).
pub(crate) fn places<'a>(c: Option<&'a Count<'a>>, community: Option<&'a str>) -> Vec<&'a str> {
    let mut out = Vec::with_capacity(3);
    if let Some(c) = c {
        out.extend([c.page.visitors.as_str(), c.other.visitors.as_str()]);
    }
    out.extend(community);
    out
}

/// How long a view's own key (`keys::anon_view_key`) lives: longer than any client retries a view.
const VIEW_KEY_SECONDS: u64 = 600;

/// Everything an anonymous view's steps need besides the tracker.
pub(crate) struct AnonSteps<'a> {
    pub(crate) fingerprint: &'a Fingerprint,
    /// The page's own id for the view, if it sent one.
    pub(crate) view_id: Option<uuid::Uuid>,
    pub(crate) new_session: &'a str,
    pub(crate) time: &'a str,
    pub(crate) url: &'a str,
    pub(crate) view: &'a str,
    /// The day's counting (none for a bot).
    pub(crate) count: Option<Count<'a>>,
    /// The community visit: the community's keys and the visitor document.
    pub(crate) community: Option<(keys::CommunityKeys, String)>,
    pub(crate) finalize_job: &'a str,
    pub(crate) persist_job: &'a str,
}

/// What the visitor's step answered.
pub(crate) struct Visited {
    pub(crate) session_id: String,
    pub(crate) pages: i64,
    pub(crate) new_session: bool,
    pub(crate) persisted: bool,
}

/// An anonymous view, steps 1 to 4.
pub(crate) async fn track_anonymous(t: &Tracker, s: AnonSteps<'_>) -> Result<Visited, TrackError> {
    let visitor = keys::anon_visitor(s.fingerprint);
    let buffer_ttl = t.config.buffer_ttl.max(t.config.anon_timeout * 2);
    let mut visit = scripts::VISIT.prepare_invoke();
    // The view's own key: named by the page's view id when it sent one (a client's retry of the
    // same view finds it), else by an id drawn for this request (the cluster client's re-send
    // finds it).
    let view_id = s.view_id.unwrap_or_else(uuid::Uuid::new_v4);
    visit
        .key(keys::anon_session_key(s.fingerprint))
        .key(keys::anon_views_key(s.fingerprint))
        .key(keys::footprint(&visitor))
        .key(keys::anon_open_key(s.fingerprint))
        .key(keys::anon_view_key(s.fingerprint, &view_id))
        .arg(t.config.anon_timeout.as_secs().max(1))
        .arg(buffer_ttl.as_secs())
        .arg(t.config.counters_ttl.as_secs() + 86_400)
        .arg(s.new_session)
        .arg(s.time)
        .arg(s.url)
        .arg(s.view)
        .arg(s.fingerprint.as_str())
        .arg(t.config.persist_every);
    visit.arg(VIEW_KEY_SECONDS);
    let places = places(
        s.count.as_ref(),
        s.community.as_ref().map(|c| c.0.visitors.as_str()),
    );
    for place in &places {
        visit.arg(*place);
    }
    let (session_id, pages, flags, at_ms): (String, i64, i64, i64) =
        visit.invoke_async(&mut t.redis.clone()).await?;
    let new_session = flags & 1 == 1;
    let persisted = flags & 2 == 2;
    // The view is recorded: from here on a failure is logged, not answered, so a client that
    // retries a 5xx never records the view twice. Each later step runs whatever the others did.
    let mut failed = Vec::new();
    if let Some(c) = &s.count
        && let Err(e) = count(t, c).await
    {
        failed.push(("count", e));
    }
    if let Some((k, doc)) = &s.community
        && let Err(e) = crate::community::visit_keys(t, k, None, &visitor, doc, false).await
    {
        failed.push(("community", e));
    }
    if new_session {
        // Due on the finalize queue's own clock: one timeout and a second after this view.
        let due = t.config.anon_timeout + Duration::from_secs(1);
        if let Err(e) = push(
            t,
            FinalizeAnonymousSession::NAME,
            session_id.clone(),
            s.finalize_job,
            When::After(due),
        )
        .await
        {
            failed.push(("finalize", e));
        }
    }
    if persisted
        && let Err(e) = push(
            t,
            PersistAnonymousSession::NAME,
            format!("{session_id}-{pages}"),
            s.persist_job,
            When::Now,
        )
        .await
    {
        failed.push(("persist", e));
    }
    for (step, e) in failed {
        tracing::warn!(step, error = %e, "a page view's later step failed; the view is recorded and its session is on the idle sweep's list");
    }
    // An erasure that ran between the first step and now: take back what the later steps wrote.
    if let Ok(session) = session_id.parse::<uuid::Uuid>() {
        let pages = i32::try_from(pages).unwrap_or(i32::MAX);
        match t
            .take_back_if_erased(s.fingerprint, at_ms, &places, session, pages)
            .await
        {
            Ok(true) => tracing::info!(
                "the visitor was erased during its page view; its later steps were taken back"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not check the page view against an erasure")
            }
        }
    }
    Ok(Visited {
        session_id,
        pages,
        new_session,
        persisted,
    })
}

async fn push(
    t: &Tracker,
    job: &str,
    id: String,
    payload: &str,
    when: When,
) -> Result<(), TrackError> {
    let queue = t
        .queues
        .get(job)
        .ok_or_else(|| EnqueueError::UnknownJob(job.to_owned()))?;
    let mut new = NewJob::new(payload);
    // Unique while the job lives: a push the cluster client re-sends after a dropped
    // connection finds it and adds nothing.
    new.unique = Some((format!("view:{id}"), Duration::from_secs(VIEW_KEY_SECONDS)));
    new.unique_until_end = true;
    new.id = id;
    new.when = when;
    queue.push(new).await.map_err(EnqueueError::Queue)?;
    Ok(())
}
