//! Coalesced reads of visitors' keys: the jobs running at one moment read their visitors'
//! sessions and erasure marks in one pipeline (one round trip, one wake-up of Redis and of this
//! process) instead of one round trip each. A job still asks for its own read and awaits its own
//! answer; under light load a read goes alone at once.

use std::sync::Arc;

use domain::conn::RedisConn;
use domain::keys::{Fingerprint, anon_erased_key, anon_session_key, anon_views_key};
use redis::{RedisResult, Value};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::StoreError;
use super::visitor::{READ_SESSION, Snapshot};

/// Reads per pipeline at most.
const MAX_BATCH: usize = 256;
/// Pipelines in flight at most.
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
    /// The read on its own (the script loaded if Redis lost it).
    async fn alone(&self, redis: &mut RedisConn) -> RedisResult<Value> {
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
/// documentation). On a Redis Cluster each read goes alone: a pipeline there spans nodes.
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
        let (tx, mut rx) = mpsc::channel::<(Ask, Reply)>(MAX_BATCH * IN_FLIGHT);
        let conn = redis.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            let mut buf = Vec::with_capacity(MAX_BATCH);
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                if rx.recv_many(&mut buf, MAX_BATCH).await == 0 {
                    return;
                }
                let batch = std::mem::replace(&mut buf, Vec::with_capacity(MAX_BATCH));
                let mut conn = conn.clone();
                tokio::spawn(async move {
                    read_batch(&mut conn, batch).await;
                    drop(permit);
                });
            }
        });
        Self {
            redis,
            tx: Some(tx),
        }
    }

    async fn ask(&self, ask: Ask) -> RedisResult<Value> {
        let Some(tx) = &self.tx else {
            return ask.alone(&mut self.redis.clone()).await;
        };
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((ask, _))) = tx.send((ask, reply)).await {
            return ask.alone(&mut self.redis.clone()).await;
        }
        match answer.await {
            Ok(result) => result,
            // The reader is gone (the process is stopping): read alone.
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

/// Send one batch as a pipeline and answer each job. A read the server refused inside the
/// pipeline (a script Redis lost at a restart: `NOSCRIPT`) is sent again alone, which loads the
/// script; a pipeline that failed as a whole fails each of its reads.
async fn read_batch(conn: &mut RedisConn, batch: Vec<(Ask, Reply)>) {
    if let [_] = batch.as_slice() {
        for (ask, reply) in batch {
            let _ = reply.send(ask.alone(conn).await);
        }
        return;
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let invocations: Vec<Option<redis::ScriptInvocation<'static>>> = batch
        .iter()
        .map(|(ask, _)| match ask {
            Ask::Session { doc, views } => {
                let mut inv = READ_SESSION.prepare_invoke();
                inv.key(doc).key(views);
                Some(inv)
            }
            Ask::Get(_) => None,
        })
        .collect();
    for ((ask, _), inv) in batch.iter().zip(&invocations) {
        match (ask, inv) {
            (_, Some(inv)) => {
                pipe.invoke_script(inv);
            }
            (Ask::Get(key), None) => {
                pipe.get(key);
            }
            (Ask::Session { .. }, None) => {}
        }
    }
    let answers: Vec<Value> = match pipe.query_async(conn).await {
        Ok(a) => a,
        Err(e) => {
            // Redis is unreachable or the connection broke: every read fails now (each job is
            // retried), rather than each waiting out the same outage in turn.
            let said = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(redis::RedisError::from(std::io::Error::other(
                    said.clone(),
                ))));
            }
            return;
        }
    };
    let mut answers = answers.into_iter();
    for (ask, reply) in batch {
        let answer = match answers.next() {
            Some(Value::ServerError(_)) | None => ask.alone(conn).await,
            Some(v) => Ok(v),
        };
        let _ = reply.send(answer);
    }
}
