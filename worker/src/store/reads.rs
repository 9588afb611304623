//! Coalesced reads of visitors' keys: the jobs running at one moment read their visitors'
//! sessions and erasure marks in one transaction (one round trip, one wake-up of Redis and of
//! this process, plain commands instead of a script each) instead of one round trip each. A
//! job still asks for its own read and awaits its own answer; under light load a read goes alone
//! at once, in a transaction of its own.

use domain::conn::RedisConn;
use domain::keys::{Fingerprint, anon_erased_key, anon_session_key, anon_views_key};
use redis::{RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::batches;
use super::visitor::{READ_SESSION, Snapshot};

/// Reads per transaction at most.
const MAX_BATCH: usize = 256;
/// Transactions in flight at most.
const IN_FLIGHT: usize = 4;

/// One read a job asks for.
#[derive(Debug)]
enum Ask {
    /// [`READ_SESSION`] on a visitor's document and views.
    Session { doc: String, views: String },
    /// `GET` of a key (an erasure mark).
    Get(String),
}

impl Ask {
    /// Its commands, added to a transaction that starts with `TIME`.
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        match self {
            Self::Session { doc, views } => {
                pipe.get(doc).pttl(doc).llen(views);
            }
            Self::Get(key) => {
                pipe.get(key);
            }
        }
    }

    /// Its answer, taken from the transaction's answers (`now_ms`: its `TIME`): a session's is
    /// {document, PTTL, now, views buffered}, as [`READ_SESSION`] answers on a cluster.
    fn answer(
        &self,
        answers: &mut impl Iterator<Item = Value>,
        now_ms: &Value,
    ) -> RedisResult<Value> {
        match self {
            Self::Session { .. } => match (answers.next(), answers.next(), answers.next()) {
                (Some(doc), Some(pttl), Some(buffered)) => {
                    Ok(Value::Array(vec![doc, pttl, now_ms.clone(), buffered]))
                }
                _ => Err(missing()),
            },
            Self::Get(_) => answers.next().ok_or_else(missing),
        }
    }

    /// On a Redis Cluster, alone: the session through [`READ_SESSION`] on its visitor's node.
    async fn on_cluster(&self, redis: &mut RedisConn) -> RedisResult<Value> {
        match self {
            Self::Session { doc, views } => {
                READ_SESSION.key(doc).key(views).invoke_async(redis).await
            }
            Self::Get(key) => redis::cmd("GET").arg(key).query_async(redis).await,
        }
    }
}

type Reply = oneshot::Sender<RedisResult<Value>>;

/// Reads of visitors' keys, coalesced across the jobs of this process (see the module's
/// documentation). On a Redis Cluster each read goes alone (the script, on its visitor's node):
/// a transaction there cannot span nodes.
#[derive(Clone, Debug)]
pub struct VisitorReads {
    redis: RedisConn,
    tx: Option<mpsc::Sender<(Ask, Reply)>>,
}

impl VisitorReads {
    /// Start the reader over `redis` (needs a tokio runtime).
    pub fn spawn(redis: RedisConn) -> Self {
        if redis.is_cluster() {
            return Self { redis, tx: None };
        }
        let (tx, rx) = mpsc::channel::<(Ask, Reply)>(MAX_BATCH * IN_FLIGHT);
        let conn = redis.clone();
        batches::spawn(rx, MAX_BATCH, IN_FLIGHT, None, move |batch| {
            let mut conn = conn.clone();
            async move { read_batch(&mut conn, batch).await }
        });
        Self {
            redis,
            tx: Some(tx),
        }
    }

    async fn ask(&self, ask: Ask) -> RedisResult<Value> {
        let Some(tx) = &self.tx else {
            return ask.on_cluster(&mut self.redis.clone()).await;
        };
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((ask, _))) = tx.send((ask, reply)).await {
            return one(&mut self.redis.clone(), &ask).await;
        }
        match answer.await {
            Ok(result) => result,
            // The reader dropped the read (the process is stopping): it fails, and is retried.
            Err(_) => Err(redis::RedisError::from(std::io::Error::other(
                "the visitor reader stopped",
            ))),
        }
    }

    /// The live document of `fingerprint`, its remaining lifetime, its buffered views' count and
    /// Redis's time, in one atomic read.
    pub async fn session(&self, fingerprint: &Fingerprint) -> Result<Snapshot, StoreError> {
        let value = self
            .ask(Ask::Session {
                doc: anon_session_key(fingerprint),
                views: anon_views_key(fingerprint),
            })
            .await?;
        let (raw, pttl_ms, now_ms, buffered): (Option<String>, i64, i64, i64) =
            redis::from_redis_value(value).map_err(redis::RedisError::from)?;
        Snapshot::new(raw, pttl_ms, now_ms, buffered)
    }

    /// When `fingerprint` was erased (Redis's time in ms; `i64::MAX` while the erasure runs), if
    /// it was.
    pub async fn erased_at(&self, fingerprint: &Fingerprint) -> Result<Option<i64>, StoreError> {
        let value = self.ask(Ask::Get(anon_erased_key(fingerprint))).await?;
        Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
    }
}

/// Send one batch as one transaction (`MULTI` … `EXEC`: `TIME`, then each read as plain
/// commands) and answer each job. A session's snapshot is as atomic as the script's, and every
/// read of the batch shares one instant of Redis's clock: the `TIME` came no later than any of
/// its `GET`s, as the erasure check needs. Plain commands cost Redis a quarter of the script
/// (its `EVALSHA` took 13 µs here against about 3 µs for `GET`, `PTTL` and `LLEN`), and a
/// restarted Redis has no script to lose. When Redis refuses a transaction of several reads (a
/// key of the wrong type, say), each read goes again in a transaction of its own and fails or
/// succeeds on its own; when Redis cannot be reached, every read fails at once.
async fn read_batch(conn: &mut RedisConn, batch: Vec<(Ask, Reply)>) {
    let asks: Vec<&Ask> = batch.iter().map(|(ask, _)| ask).collect();
    match transaction(conn, &asks).await {
        Ok(answers) => {
            for ((_, reply), answer) in batch.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(e)
            if batch.len() > 1
                && !(e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()) =>
        {
            tracing::debug!(error = %e, reads = batch.len(), "batched reads refused; each alone");
            let alone = batch.into_iter().map(|(ask, reply)| {
                let mut conn = conn.clone();
                async move {
                    let _ = reply.send(one(&mut conn, &ask).await);
                }
            });
            futures::future::join_all(alone).await;
        }
        Err(e) => {
            // Redis is unreachable or the connection broke (or refused a lone read): every read
            // fails now (each job is retried), rather than each waiting out the outage in turn.
            for (_, reply) in batch {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// One read in a transaction of its own.
async fn one(conn: &mut RedisConn, ask: &Ask) -> RedisResult<Value> {
    transaction(conn, &[ask])
        .await?
        .pop()
        .unwrap_or_else(|| Err(missing()))
}

/// `TIME` and `asks` in one `MULTI` … `EXEC`: an answer per read, in order.
async fn transaction(conn: &mut RedisConn, asks: &[&Ask]) -> RedisResult<Vec<RedisResult<Value>>> {
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("TIME");
    for ask in asks {
        ask.add_to(&mut pipe);
    }
    let answers: Vec<Value> = pipe.query_async(conn).await?;
    let mut answers = answers.into_iter();
    let now_ms = match answers.next().map(redis::from_redis_value::<(i64, i64)>) {
        Some(Ok((secs, micros))) => Value::Int(secs * 1000 + micros / 1000),
        _ => Value::Nil,
    };
    Ok(asks
        .iter()
        .map(|ask| ask.answer(&mut answers, &now_ms))
        .collect())
}

/// An answer the transaction did not hold (never expected: each read asked for its own).
fn missing() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(
        "Redis answered fewer reads than were asked",
    ))
}
