//! The operator's commands on a queue's jobs (`worker jobs list | requeue | discard | run-now |
//! revoke | pause | resume`), the CLI twin of `GET /v1/queues/{name}/jobs`,
//! `POST /v1/queues/{name}/dead/...`, `POST /v1/queues/{name}/jobs/run-now`,
//! `DELETE /v1/jobs/{name}/{id}` and `POST /v1/queues/{name}/{pause,resume}`.

use anyhow::Context as _;
use domain::conn::RedisConn;
use domain::queues::Queues;
use queue::{JobInfo, ListState, Queue};

/// The queue of job `name`.
fn queue<'a>(queues: &'a Queues, name: &str) -> anyhow::Result<&'a Queue<RedisConn>> {
    queues
        .get(name)
        .with_context(|| format!("no job is named {name:?}"))
}

/// A state's name, as the API spells it.
pub fn parse_state(s: &str) -> anyhow::Result<ListState> {
    Ok(match s {
        "queued" => ListState::Queued,
        "scheduled" => ListState::Scheduled,
        "retrying" => ListState::Retrying,
        "running" => ListState::Running,
        "done" => ListState::Done,
        "dead" => ListState::Dead,
        other => anyhow::bail!(
            "state {other:?}: expected queued, scheduled, retrying, running, done or dead"
        ),
    })
}

/// One job as a JSON line: id, attempts, last error, arguments, times (epoch ms).
pub fn job_line(j: &JobInfo) -> serde_json::Value {
    let args = serde_json::from_str(&j.payload)
        .unwrap_or_else(|_| serde_json::Value::String(j.payload.clone()));
    serde_json::json!({
        "id": j.id, "attempts": j.attempts, "last_error": j.last_error, "args": args,
        "enqueued_ms": j.since_ms, "state_ms": j.status_ms,
    })
}

/// Print one page of `name`'s jobs in `state`, a JSON line per job, then a summary line.
pub async fn list(
    queues: &Queues,
    name: &str,
    state: ListState,
    offset: usize,
    limit: usize,
) -> anyhow::Result<()> {
    let q = queue(queues, name)?;
    let page = q.list(state, offset, limit).await?;
    for j in &page.jobs {
        println!("{}", job_line(j));
    }
    println!(
        "{}",
        serde_json::json!({"total": page.total, "next_offset": page.next})
    );
    Ok(())
}

/// Requeue (`requeue` true) or discard dead jobs of `name`: `ids`, or all when `all`.
pub async fn act_on_dead(
    queues: &Queues,
    name: &str,
    ids: &[String],
    all: bool,
    requeue: bool,
) -> anyhow::Result<()> {
    let q = queue(queues, name)?;
    if all != ids.is_empty() {
        anyhow::bail!("give the dead jobs' ids, or --all (not both)");
    }
    let mut done = 0;
    let mut not_dead = Vec::new();
    if all {
        done = if requeue {
            q.requeue_all_dead().await?
        } else {
            q.discard_all_dead().await?
        };
    }
    for id in ids {
        let was_dead = if requeue {
            q.requeue_dead(id).await?
        } else {
            q.discard_dead(id).await?
        };
        if was_dead {
            done += 1;
        } else {
            not_dead.push(id.clone());
        }
    }
    println!(
        "{}",
        serde_json::json!({"done": done, "not_dead": not_dead})
    );
    Ok(())
}

/// Pause (`paused` true) or resume queue `name`.
pub async fn pause(queues: &Queues, name: &str, paused: bool) -> anyhow::Result<()> {
    let q = queue(queues, name)?;
    if paused {
        q.pause().await?;
    } else {
        q.resume().await?;
    }
    println!("{}", serde_json::json!({"name": name, "paused": paused}));
    Ok(())
}

/// Run waiting jobs of `name` now (scheduled or retrying: to the front of the line, attempts
/// kept; dead: requeued). Prints how many moved and the ids that were neither.
pub async fn run_now(queues: &Queues, name: &str, ids: &[String]) -> anyhow::Result<()> {
    let q = queue(queues, name)?;
    if ids.is_empty() {
        anyhow::bail!("give the jobs' ids");
    }
    let moved = q.run_now_many(ids).await?;
    let mut done = moved.len();
    let mut not_waiting = Vec::new();
    for id in ids.iter().filter(|id| !moved.contains(id)) {
        if q.requeue_dead(id).await? {
            done += 1;
        } else {
            not_waiting.push(id);
        }
    }
    println!(
        "{}",
        serde_json::json!({"done": done, "not_waiting": not_waiting})
    );
    Ok(())
}

/// Revoke jobs of `name`: prints each id's outcome (`revoked`, `stopping`, or `done`/`dead`/
/// `unknown` when nothing was done); fails when any id was not revoked.
pub async fn revoke(queues: &Queues, name: &str, ids: &[String]) -> anyhow::Result<()> {
    let q = queue(queues, name)?;
    if ids.is_empty() {
        anyhow::bail!("give the jobs' ids");
    }
    let mut missed = 0;
    for id in ids {
        let outcome = if queue::id::is_valid_job_id(id) {
            q.revoke(id, "revoked before it started").await?
        } else {
            queue::Revoked::Unknown
        };
        if !matches!(outcome, queue::Revoked::Waiting | queue::Revoked::Running) {
            missed += 1;
        }
        println!(
            "{}",
            serde_json::json!({"id": id, "revoke": outcome.as_str()})
        );
    }
    if missed > 0 {
        anyhow::bail!("{missed} of {} jobs were not revoked", ids.len());
    }
    Ok(())
}
