//! The console (`/console`), against the real Redis and PostgreSQL: its HTTP contract (sign-in,
//! cookie, CSRF, origins, no state change by GET, escaping of what jobs carry), and the whole
//! console in Debian's headless Chromium (`console_browser.py`), whose effects are checked here in
//! Redis.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use domain::args::JobArgs;
use queue::{Ack, JobStatus, NewJob};
use serde_json::json;
use testkit::{TestDb, http_raw};
use tests::{InProcessWorker, TestApi, TestRedis, job_context};
use uuid::Uuid;
use worker::jobs::PersistAnonymousSession;

const TOKEN: &str = "console-test-token";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// Sign in; the session cookie (`name=value`).
async fn sign_in(api: &TestApi) -> String {
    let a = http_raw(
        &api.addr,
        "POST",
        "/console/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={TOKEN}").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 303, "{}", a.text);
    let cookie = a.header("set-cookie").unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn get(api: &TestApi, path: &str, cookie: &str) -> testkit::HttpAnswer {
    http_raw(&api.addr, "GET", path, &[("cookie", cookie)], b"")
        .await
        .unwrap()
}

async fn post(
    api: &TestApi,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> testkit::HttpAnswer {
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    http_raw(&api.addr, "POST", path, &h, body.as_bytes())
        .await
        .unwrap()
}

/// `n` jobs of `PersistAnonymousSession` pushed with `args`, leased and failed for good with
/// `error` (as a worker whose attempt failed would): their ids.
async fn dead_jobs(
    q: &queue::Queue<domain::conn::RedisConn>,
    args: &[String],
    error: &str,
) -> Vec<String> {
    for a in args {
        q.push(NewJob::new(a.clone())).await.unwrap();
    }
    let leased = q.fetch(args.len()).await.unwrap().jobs;
    assert_eq!(leased.len(), args.len());
    let acks: Vec<Ack> = leased
        .iter()
        .map(|j| Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: error.to_owned(),
        })
        .collect();
    q.ack(&acks).await.unwrap();
    leased.into_iter().map(|j| j.id).collect()
}

/// Sign-in, cookie, CSRF and origin checks, GET never acting, and what a job carries shown as
/// text, never as markup.
#[tokio::test]
async fn the_console_signs_in_checks_every_form_and_escapes_what_jobs_carry() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[("API_TOKEN", TOKEN)]).await;
    let ctx = job_context(&db, &redis, &[]);
    let q = ctx
        .queues
        .get(PersistAnonymousSession::NAME)
        .unwrap()
        .clone();
    let evil = r#"<script>alert(1)</script>"#;
    let ids = dead_jobs(
        &q,
        &[json!({"fingerprint": format!("fp{evil}")}).to_string()],
        &format!("boom {evil}"),
    )
    .await;
    let name = PersistAnonymousSession::NAME;

    // Without a session: pages go to the form, actions are refused.
    let a = get(&api, "/console", "").await;
    assert_eq!(
        (a.status, a.header("location")),
        (303, Some("/console/login"))
    );
    let a = post(
        &api,
        &format!("/console/queues/{name}/pause"),
        &[],
        "csrf=x",
    )
    .await;
    assert_eq!(a.status, 401);
    // A wrong token: 401 and the form again; the bearer header does not open the console.
    let a = post(&api, "/console/login", &[], "token=wrong").await;
    assert_eq!(a.status, 401);
    assert!(a.text.contains("not the API token"));
    assert!(a.header("set-cookie").is_none());
    let a = http_raw(
        &api.addr,
        "GET",
        "/console",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(a.status, 303);

    // The right token: an HttpOnly, SameSite=Strict cookie scoped to the console.
    let a = post(&api, "/console/login", &[], &format!("token={TOKEN}")).await;
    let set = a.header("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{set} lacks {flag}");
    }
    assert!(!set.contains(TOKEN), "the cookie never holds the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    // A cookie with a changed expiry is not a session.
    let (e, mac) = cookie.split_once('=').unwrap().1.split_once('.').unwrap();
    let forged = format!(
        "celeriac_console={}.{mac}",
        e.parse::<i64>().unwrap() + 3600
    );
    assert_eq!(get(&api, "/console", &forged).await.status, 303);

    let overview = get(&api, "/console", &cookie).await;
    assert_eq!(overview.status, 200);
    assert!(
        overview
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(overview.header("cache-control"), Some("no-store"));
    let csrf = csrf_of(&overview.text);

    // What the job carries is text: escaped in the queue page and the job page.
    let page = get(&api, &format!("/console/queues/{name}?state=dead"), &cookie).await;
    assert_eq!(page.status, 200);
    let job = get(
        &api,
        &format!("/console/queues/{name}/jobs/{}", ids[0]),
        &cookie,
    )
    .await;
    assert_eq!(job.status, 200);
    for p in [&page.text, &job.text] {
        assert!(!p.contains(evil), "raw markup from a job reached the page");
        assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    // No state change by GET; a POST needs the CSRF token and this origin.
    let pause = format!("/console/queues/{name}/pause");
    assert_eq!(get(&api, &pause, &cookie).await.status, 405);
    assert!(!q.stats().await.unwrap().paused);
    let a = post(&api, &pause, &[("cookie", &cookie)], "csrf=forged").await;
    assert_eq!(a.status, 403);
    let a = post(&api, &pause, &[("cookie", &cookie)], "").await;
    assert_eq!(a.status, 403);
    let a = post(
        &api,
        &pause,
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, 403);
    // Another session's token does not do either.
    let other = sign_in(&api).await;
    let other_csrf = csrf_of(&get(&api, "/console", &other).await.text);
    if other != cookie {
        let a = post(
            &api,
            &pause,
            &[("cookie", &cookie)],
            &format!("csrf={other_csrf}"),
        )
        .await;
        assert_eq!(a.status, 403);
    }
    assert!(
        !q.stats().await.unwrap().paused,
        "nothing refused took effect"
    );
    let origin = format!("http://{}", api.addr);
    let a = post(
        &api,
        &pause,
        &[("cookie", &cookie), ("origin", &origin)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, 303);
    assert!(q.stats().await.unwrap().paused);

    // Bad values name their field, as a page.
    let a = get(
        &api,
        &format!("/console/queues/{name}?state=bogus"),
        &cookie,
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.text.contains("state:"));
    let a = get(&api, "/console/analytics?communities=nope", &cookie).await;
    assert_eq!(a.status, 400);
    assert!(a.text.contains("communities:"));
    assert_eq!(get(&api, "/console/queues/nope", &cookie).await.status, 404);
    let a = post(
        &api,
        &format!("/console/queues/{name}/jobs"),
        &[("cookie", &cookie)],
        &format!("csrf={csrf}&action=requeue"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.text.contains("ids:"));
    // Discard by selection: the job is gone.
    let a = post(
        &api,
        &format!("/console/queues/{name}/jobs"),
        &[("cookie", &cookie)],
        &format!("csrf={csrf}&state=dead&action=discard&ids={}", ids[0]),
    )
    .await;
    assert_eq!(a.status, 303);
    assert!(
        a.header("location")
            .unwrap()
            .ends_with("done=discarded&n=1")
    );
    assert!(q.job(&ids[0]).await.unwrap().is_none());
    // Assets are served from the binary.
    let css = get(&api, "/console/assets/console.css", "").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(
        get(&api, "/console/assets/../Cargo.toml", "").await.status,
        404
    );
}

/// The console in a real browser against the real fleet (API, worker, Redis, PostgreSQL):
/// `console_browser.py` signs in, reads counts, requeues a dead job and watches it complete,
/// discards one, pauses and resumes, opens every page, and screenshots each at desktop and phone
/// widths (`target/console-screenshots/`). Here: what it did, in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser_steers_the_real_fleet() {
    let python = testkit::venv::selenium_python();
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/browser.sh (scripts/test.sh does)"
        );
    }
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[("API_TOKEN", TOKEN)]).await;
    let ctx = job_context(&db, &redis, &[]);
    let q = ctx
        .queues
        .get(PersistAnonymousSession::NAME)
        .unwrap()
        .clone();
    let fps: Vec<String> = (0..3).map(|i| redis.token(&format!("fp{i}"))).collect();
    let dead = dead_jobs(
        &q,
        &fps.iter()
            .map(|fp| json!({"fingerprint": fp}).to_string())
            .collect::<Vec<_>>(),
        "refused by the test",
    )
    .await;
    // Analytics data: views in a community, a page that leads, a sign-up.
    let community = Uuid::new_v4();
    let page = format!("/t/{}", redis.token("page"));
    let visitor = redis.token("visitor");
    for i in 0..4 {
        let body = json!({"fingerprint": visitor, "url": format!("{page}/{}", i % 2),
            "community_id": community, "referrer": "https://news.example/", "user_agent": CHROME});
        let a = testkit::http_full(
            &api.addr,
            "POST",
            "/v1/track/pageview",
            Some(TOKEN),
            Some(&body),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 202, "{}", a.body);
    }
    let user = Uuid::new_v4();
    redis.track(&user.to_string());
    let a = testkit::http_full(
        &api.addr,
        "POST",
        "/v1/conversions",
        Some(TOKEN),
        Some(&json!({"user_id": user, "fingerprint": visitor})),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 202, "{}", a.body);
    let today = chrono::Utc::now().date_naive();
    let a = testkit::http_full(
        &api.addr,
        "POST",
        "/v1/jobs/aggregate_page_analytics",
        Some(TOKEN),
        Some(&json!({"date": today})),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 202, "{}", a.body);
    let worker = InProcessWorker::start(ctx.clone());
    // The worker has aggregated the day and counted the conversion before the browser looks.
    let aggregate = ctx.queues.get("aggregate_page_analytics").unwrap().clone();
    testkit::eventually(Duration::from_secs(30), "the day aggregated", || {
        let aggregate = aggregate.clone();
        async move {
            aggregate
                .stats()
                .await
                .ok()
                .filter(|s| s.done >= 1 && s.queued == 0 && s.running == 0)
        }
    })
    .await;
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| testkit::workspace_dir().join("target"), Into::into)
        .join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = tokio::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/console_browser.py"
        ))
        .env("CONSOLE_URL", format!("http://{}", api.addr))
        .env("CONSOLE_TOKEN", TOKEN)
        .env("QUEUE", PersistAnonymousSession::NAME)
        .env("DEAD_IDS", dead.join(","))
        .env("COMMUNITY", community.to_string())
        .env("TOP_PAGE", format!("{page}/0"))
        .env("SHOT_DIR", &shots)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let did: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    worker.stop().await;
    // The effects: the requeued job ran to done, the discarded one is gone, the third is still
    // dead with its error, the queue is not paused.
    assert_eq!(did["requeued"], dead[0].as_str());
    let requeued = q.job(&dead[0]).await.unwrap().unwrap();
    assert_eq!(requeued.status, JobStatus::Done);
    assert!(q.job(&dead[1]).await.unwrap().is_none(), "discarded");
    let kept = q.job(&dead[2]).await.unwrap().unwrap();
    assert_eq!(kept.status, JobStatus::Dead);
    assert_eq!(kept.last_error.as_deref(), Some("refused by the test"));
    let stats = q.stats().await.unwrap();
    assert!(!stats.paused);
    assert_eq!(stats.dead, 1);
    let taken = did["screenshots"].as_array().unwrap();
    assert_eq!(taken.len(), 9 * 2, "{taken:?}");
    for p in taken {
        let len = std::fs::metadata(p.as_str().unwrap()).unwrap().len();
        assert!(len > 5_000, "{p} is {len} bytes");
    }
}
