//! The batching session writer: concurrent jobs' session rows upserted together (group commit).

use domain::db::Db;
use std::sync::Arc;

use domain::documents::AnonSessionDoc;
use domain::sql::statement;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, RuntimeErr, Value};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::batches::{self, Linger};
use crate::geo::GeoIp;

/// Rows per batch at most (on SQLite one statement of 14 parameters per row, far below its limit).
const MAX_BATCH: usize = 256;
/// Under load, a statement waits for this many rows ...
const MIN_BATCH: usize = 64;
/// ... or this long, whichever comes first.
const LINGER: std::time::Duration = std::time::Duration::from_millis(3);

type Reply = oneshot::Sender<Result<(), String>>;

/// Group commit for session upserts: concurrent jobs' rows are written together in one
/// statement (one round trip and one commit for up to 256 rows), each job still waiting for its
/// own row to be durable before it is acknowledged. Under light load a batch is one row, written
/// at once; batches grow only while earlier statements are in flight. A batch that fails is
/// written again row by row, so one row the database refuses fails only its own job.
#[derive(Clone, Debug)]
pub struct SessionWriter {
    tx: mpsc::Sender<(Box<AnonSessionDoc>, Reply)>,
}

impl SessionWriter {
    /// Start the writer over `db` with at most `writers` statements in flight (needs a tokio
    /// runtime); a new row's `location_data` comes from `geo`.
    pub fn spawn(db: Db, writers: usize, geo: Option<Arc<GeoIp>>) -> Self {
        let writers = writers.max(1);
        let (tx, rx) = mpsc::channel::<(Box<AnonSessionDoc>, Reply)>(MAX_BATCH * writers * 2);
        // Under load (another statement is committing) a few rows wait up to LINGER for
        // company: a commit costs about the same for 1 row as for 100 (it waits for the WAL
        // flush), so small statements only add commits. Idle, a row goes at once.
        let linger = Linger {
            min: MIN_BATCH,
            wait: LINGER,
        };
        batches::spawn(rx, MAX_BATCH, writers, Some(linger), move |batch| {
            let (db, geo) = (db.clone(), geo.clone());
            async move { write_batch(&db, geo.as_deref(), batch).await }
        });
        Self { tx }
    }

    /// Upsert one document; resolves once its statement has committed.
    pub async fn upsert(&self, doc: Box<AnonSessionDoc>) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((doc, reply))
            .await
            .map_err(|_| StoreError::Db(DbErr::Custom("session writer stopped".into())))?;
        done.await
            .map_err(|_| StoreError::Db(DbErr::Custom("session writer stopped".into())))?
            .map_err(|e| StoreError::Db(DbErr::Custom(e)))
    }
}

/// Whether the database itself refused the statement (bad data), as opposed to the connection
/// failing: only then can writing the rows one by one tell the bad one from the rest. During an
/// outage every row would wait out the pool's acquire timeout in turn.
fn refused_by_database(e: &DbErr) -> bool {
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            s.as_database_error().is_some() && !domain::db::is_unavailable(e)
        }
        _ => false,
    }
}

/// Write one batch and answer each waiting job: all rows in one statement, or, when the database
/// refuses that statement and the batch has several rows, each row on its own.
async fn write_batch(db: &Db, geo: Option<&GeoIp>, batch: Vec<(Box<AnonSessionDoc>, Reply)>) {
    let docs: Vec<&AnonSessionDoc> = batch.iter().map(|(d, _)| &**d).collect();
    let started = std::time::Instant::now();
    let result = upsert_many(db, geo, &docs).await;
    tracing::trace!(
        rows = docs.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = result.is_ok(),
        "session batch written"
    );
    let refused = result.as_ref().err().is_some_and(refused_by_database);
    if !refused || batch.len() == 1 {
        let result = result.map_err(|e| e.to_string());
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
        return;
    }
    tracing::debug!(
        rows = batch.len(),
        "session batch failed; writing its rows one by one"
    );
    for (doc, reply) in batch {
        let result = upsert_many(db, geo, &[&*doc])
            .await
            .map_err(|e| e.to_string());
        let _ = reply.send(result);
    }
}

/// The PostgreSQL form of [`upsert_many`]: one fixed statement whatever the batch size, the rows
/// passed as one JSON array (short keys, see [`PgRow`]) unpacked by `json_to_recordset`. The text
/// never changes, so each connection prepares and plans it once.
const UPSERT_PG: &str = "INSERT INTO analytics_anonymoussession AS s (id, device_fingerprint, \
     session_start, session_end, last_activity, pages_visited, ip_address, user_agent, device_type, \
     browser, os, landing_page, referrer, is_active, is_bot, location_data) \
     SELECT r.i, r.f, r.s, NULL, r.l, r.p, r.a, r.u, r.d, r.b, r.o, r.g, r.r, TRUE, r.x, r.c \
     FROM json_to_recordset($1::text::json) AS r(i uuid, f text, s timestamptz, l timestamptz, \
     p integer, a inet, u text, d text, b text, o text, g text, r text, x boolean, c jsonb) \
     ON CONFLICT (id) DO UPDATE SET \
     last_activity = GREATEST(s.last_activity, excluded.last_activity), \
     pages_visited = GREATEST(s.pages_visited, excluded.pages_visited)";

/// Largest JSON argument per statement. sqlx 0.9.0 leaves Nagle's algorithm on (TCP_NODELAY
/// unset) and a socket's send buffer starts at 16 KiB: a larger message goes out in two writes
/// and the second waits for PostgreSQL's delayed ACK, 40 ms per statement (measured: 64-row
/// statements took ~50 ms, 38-row ones ~4 ms). A bigger batch is sent as several statements in
/// one transaction (one commit).
const CHUNK_BYTES: usize = 12 * 1024;

/// One row of [`UPSERT_PG`]'s JSON array; the keys are the record's one-letter columns.
#[derive(serde::Serialize)]
struct PgRow<'a> {
    i: uuid::Uuid,
    f: &'a str,
    s: chrono::DateTime<chrono::Utc>,
    l: chrono::DateTime<chrono::Utc>,
    p: i32,
    a: Option<&'a str>,
    u: &'a str,
    d: &'a str,
    b: &'a str,
    o: &'a str,
    g: &'a str,
    r: &'a str,
    x: bool,
    c: &'a serde_json::Value,
}

/// The rows as JSON arrays of at most [`CHUNK_BYTES`] each (a row bigger than that goes alone).
fn json_chunks(rows: &[Row<'_>]) -> Result<Vec<String>, serde_json::Error> {
    let mut chunks = Vec::new();
    let mut cur = String::with_capacity(CHUNK_BYTES);
    for m in rows {
        let d = m.doc;
        let row = serde_json::to_string(&PgRow {
            i: d.session_id,
            f: &d.device_fingerprint,
            s: d.started_at,
            l: m.last_activity,
            p: m.pages_visited,
            a: valid_ip(d.ip_address.as_deref()),
            u: &d.user_agent,
            d: &d.device_type,
            b: &d.browser,
            o: &d.os,
            g: &d.landing_page,
            r: &d.referrer,
            x: d.is_bot,
            c: &m.location,
        })?;
        if !cur.is_empty() && cur.len() + row.len() + 2 > CHUNK_BYTES {
            cur.push(']');
            chunks.push(std::mem::take(&mut cur));
        }
        cur.push(if cur.is_empty() { '[' } else { ',' });
        cur.push_str(&row);
    }
    if !cur.is_empty() {
        cur.push(']');
        chunks.push(cur);
    }
    Ok(chunks)
}

/// The address if it is one (a document written by another producer may hold anything; a bad
/// address is dropped rather than failing the row).
fn valid_ip(ip: Option<&str>) -> Option<&str> {
    ip.filter(|a| a.parse::<std::net::IpAddr>().is_ok())
}

/// One session's row in a batch: its first document, with the furthest progress of all of them.
struct Row<'a> {
    doc: &'a AnonSessionDoc,
    pages_visited: i32,
    last_activity: chrono::DateTime<chrono::Utc>,
    /// `location_data` of a new row (an existing row keeps its own).
    location: serde_json::Value,
}

/// Several documents of one session become one row (PostgreSQL refuses to update a row twice in
/// one statement); nothing is copied.
fn merge<'a>(docs: &[&'a AnonSessionDoc]) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'a>> = Vec::with_capacity(docs.len());
    let mut index = std::collections::HashMap::with_capacity(docs.len());
    for &doc in docs {
        match index.get(&doc.session_id) {
            Some(&i) => {
                let m: &mut Row<'a> = &mut rows[i];
                m.pages_visited = m.pages_visited.max(doc.pages_visited);
                m.last_activity = m.last_activity.max(doc.last_activity);
            }
            None => {
                index.insert(doc.session_id, rows.len());
                rows.push(Row {
                    doc,
                    pages_visited: doc.pages_visited,
                    last_activity: doc.last_activity,
                    location: serde_json::Value::Null,
                });
            }
        }
    }
    rows
}

/// One statement (on PostgreSQL, one transaction of 12 KiB statements) upserting every document.
pub async fn upsert_many(
    db: &Db,
    geo: Option<&GeoIp>,
    docs: &[&AnonSessionDoc],
) -> Result<(), DbErr> {
    let mut merged = merge(docs);
    for m in &mut merged {
        m.location = GeoIp::place(geo, valid_ip(m.doc.ip_address.as_deref()))
            .unwrap_or_else(|| serde_json::json!({}));
    }
    let backend = db.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        let chunks = json_chunks(&merged).map_err(|e| DbErr::Custom(e.to_string()))?;
        if let [one] = chunks.as_slice() {
            db.execute_raw(statement(backend, UPSERT_PG, vec![one.as_str().into()]))
                .await?;
        } else {
            let txn = db.begin().await?;
            for chunk in chunks {
                txn.execute_raw(statement(backend, UPSERT_PG, vec![chunk.into()]))
                    .await?;
            }
            txn.commit().await?;
        }
        return Ok(());
    }
    // SQLite: a multi-row VALUES list (its multi-argument MAX is PostgreSQL's GREATEST).
    let mut sql = String::from(
        "INSERT INTO analytics_anonymoussession AS s (id, device_fingerprint, session_start, session_end, \
         last_activity, pages_visited, ip_address, user_agent, device_type, browser, os, landing_page, \
         referrer, is_active, is_bot, location_data) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(merged.len() * 14);
    for (i, m) in merged.iter().enumerate() {
        let (doc, b) = (m.doc, i * 14);
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, NULL, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, TRUE, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10,
            b + 11,
            b + 12,
            b + 13,
            b + 14
        ));
        values.extend([
            doc.session_id.into(),
            doc.device_fingerprint.clone().into(),
            doc.started_at.into(),
            m.last_activity.into(),
            m.pages_visited.into(),
            Value::String(valid_ip(doc.ip_address.as_deref()).map(str::to_owned)),
            doc.user_agent.clone().into(),
            doc.device_type.clone().into(),
            doc.browser.clone().into(),
            doc.os.clone().into(),
            doc.landing_page.clone().into(),
            doc.referrer.clone().into(),
            doc.is_bot.into(),
            m.location.to_string().into(),
        ]);
    }
    sql.push_str(
        " ON CONFLICT (id) DO UPDATE SET \
         last_activity = MAX(s.last_activity, excluded.last_activity), \
         pages_visited = MAX(s.pages_visited, excluded.pages_visited)",
    );
    db.execute_raw(statement(backend, &sql, values)).await?;
    Ok(())
}
