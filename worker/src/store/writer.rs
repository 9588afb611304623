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
/// passed column by column as typed arrays (binary: a uuid is 16 bytes, a time 8) unpacked by
/// `unnest`. Against one JSON document read by `json_to_recordset` this spares PostgreSQL the
/// JSON lexer and each value's text input (9–15 % of its CPU per row here,
/// `bench/statement-costs.py`) and the worker the JSON writer. The text never changes, so each
/// connection prepares and plans it once. An absent address travels as `''` (an array of
/// sea-query's holds no NULL). Times travel in binary, truncated to the microsecond (as
/// SeaORM's other writes send them; the JSON text was rounded by PostgreSQL).
const UPSERT_PG: &str = "INSERT INTO analytics_anonymoussession AS s (id, device_fingerprint, \
     session_start, session_end, last_activity, pages_visited, ip_address, user_agent, device_type, \
     browser, os, landing_page, referrer, is_active, is_bot, location_data) \
     SELECT r.i, r.f, r.s, NULL, r.l, r.p, NULLIF(r.a, '')::inet, r.u, r.d, r.b, r.o, r.g, r.r, \
     TRUE, r.x, r.c::jsonb \
     FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int4[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
     $13::bool[], $14::text[]) AS r(i, f, s, l, p, a, u, d, b, o, g, r, x, c) \
     ON CONFLICT (id) DO UPDATE SET \
     last_activity = GREATEST(s.last_activity, excluded.last_activity), \
     pages_visited = GREATEST(s.pages_visited, excluded.pages_visited)";

/// Largest statement (its arguments' size) per round trip. sqlx 0.9.0 leaves Nagle's algorithm
/// on (TCP_NODELAY unset) and a socket's send buffer starts at 16 KiB: a larger message goes out
/// in two writes and the second waits for PostgreSQL's delayed ACK, 40 ms per statement
/// (measured: 64-row statements took ~50 ms, 38-row ones ~4 ms). A bigger batch is sent as
/// several statements in one transaction (one commit).
const CHUNK_BYTES: usize = 12 * 1024;

/// A row's size in [`UPSERT_PG`]'s arguments: a length word per column, 16 bytes of uuid, two
/// 8-byte times, an integer, a boolean, and its texts.
fn encoded_size(m: &Row<'_>, location: &str) -> usize {
    let d = m.doc;
    14 * 4
        + 16
        + 2 * 8
        + 4
        + 1
        + d.device_fingerprint.len()
        + d.ip_address.as_deref().map_or(0, str::len)
        + d.user_agent.len()
        + d.device_type.len()
        + d.browser.len()
        + d.os.len()
        + d.landing_page.len()
        + d.referrer.len()
        + location.len()
}

/// [`UPSERT_PG`]'s fourteen arguments for some rows, one array per column.
#[derive(Default)]
struct Columns {
    ids: Vec<uuid::Uuid>,
    fingerprints: Vec<String>,
    starts: Vec<chrono::DateTime<chrono::Utc>>,
    lasts: Vec<chrono::DateTime<chrono::Utc>>,
    pages: Vec<i32>,
    ips: Vec<String>,
    agents: Vec<String>,
    devices: Vec<String>,
    browsers: Vec<String>,
    systems: Vec<String>,
    landings: Vec<String>,
    referrers: Vec<String>,
    bots: Vec<bool>,
    locations: Vec<String>,
}

impl Columns {
    fn push(&mut self, m: &Row<'_>, location: String) {
        let d = m.doc;
        self.ids.push(d.session_id);
        self.fingerprints.push(d.device_fingerprint.clone());
        self.starts.push(d.started_at);
        self.lasts.push(m.last_activity);
        self.pages.push(m.pages_visited);
        self.ips
            .push(valid_ip(d.ip_address.as_deref()).unwrap_or("").to_owned());
        self.agents.push(d.user_agent.clone());
        self.devices.push(d.device_type.clone());
        self.browsers.push(d.browser.clone());
        self.systems.push(d.os.clone());
        self.landings.push(d.landing_page.clone());
        self.referrers.push(d.referrer.clone());
        self.bots.push(d.is_bot);
        self.locations.push(location);
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            self.ids.into(),
            self.fingerprints.into(),
            self.starts.into(),
            self.lasts.into(),
            self.pages.into(),
            self.ips.into(),
            self.agents.into(),
            self.devices.into(),
            self.browsers.into(),
            self.systems.into(),
            self.landings.into(),
            self.referrers.into(),
            self.bots.into(),
            self.locations.into(),
        ]
    }
}

/// The rows as [`UPSERT_PG`] arguments of at most [`CHUNK_BYTES`] each (a row bigger than that
/// goes alone).
fn chunks(rows: &[Row<'_>]) -> Vec<Vec<Value>> {
    let mut chunks = Vec::new();
    let (mut cur, mut size) = (Columns::default(), 0);
    for m in rows {
        let location = m.location.to_string();
        let row = encoded_size(m, &location);
        if size > 0 && size + row > CHUNK_BYTES {
            chunks.push(std::mem::take(&mut cur).into_values());
            size = 0;
        }
        cur.push(m, location);
        size += row;
    }
    if size > 0 {
        chunks.push(cur.into_values());
    }
    chunks
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
        let mut chunks = chunks(&merged);
        if chunks.len() <= 1 {
            if let Some(one) = chunks.pop() {
                db.execute_raw(statement(backend, UPSERT_PG, one)).await?;
            }
        } else {
            let txn = db.begin().await?;
            for chunk in chunks {
                txn.execute_raw(statement(backend, UPSERT_PG, chunk))
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
