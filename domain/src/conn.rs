//! The fleet's Redis connection: one server, or a Redis Cluster, behind one type ([`RedisConn`]),
//! and the check that decides which (`REDIS_URL` naming several nodes, or a node with
//! `cluster_enabled:1`). A cluster also switches this process to the cluster key layout
//! ([`crate::keys::Layout`]).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to the fleet's Redis: a self-healing connection to one server, or a cluster
/// connection that routes each command to the node owning its keys (and follows `MOVED`/`ASK`
/// through failovers and slot migrations). Cheap to clone; clones share the connection.
#[derive(Clone)]
pub enum RedisConn {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConn::Single",
            Self::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl From<ConnectionManager> for RedisConn {
    fn from(c: ConnectionManager) -> Self {
        Self::Single(c)
    }
}

impl RedisConn {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// `INFO server` of one node (on a cluster, a random primary: every node runs the same
    /// release in a healthy cluster).
    pub async fn info_server(&mut self) -> RedisResult<String> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("server");
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let v = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }

    /// Fail unless the Redis (a random primary of a cluster) is at least
    /// [`queue::MIN_REDIS_VERSION`]; returns the version found.
    pub async fn require_redis_version(
        &mut self,
    ) -> Result<queue::RedisVersion, queue::QueueError> {
        let info = self.info_server().await?;
        queue::check_redis_info(&info)
    }
}

impl RedisConn {
    /// Load `scripts` into the Redis behind this connection: on a cluster into every node the
    /// cluster lists (`CLUSTER NODES`), replicas included, each over a connection of its own, so
    /// that a replica promoted by a failover already knows them (a replica sees a script's
    /// effects, never the script, and redis-rs' own retry after `NOSCRIPT` can reach the new
    /// primary before it learns of it). `seed_url` gives the scheme and credentials.
    pub async fn load_scripts(
        &mut self,
        seed_url: &str,
        scripts: &[&redis::Script],
    ) -> RedisResult<()> {
        let Self::Cluster(c) = self else {
            for script in scripts {
                script.load_async(self).await?;
            }
            return Ok(());
        };
        let nodes: String = redis::from_redis_value(
            c.route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?,
        )?;
        let first = first_url(seed_url);
        let host_port = redis::IntoConnectionInfo::into_connection_info(first)?
            .addr()
            .to_string();
        for line in nodes.lines() {
            // `<id> <ip:port@bus> <flags> …`; a node marked failed or without an address is skipped.
            let mut fields = line.split_whitespace();
            let (Some(_), Some(addr), Some(flags)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let addr = addr.split('@').next().unwrap_or_default();
            if addr.is_empty() || addr.starts_with(':') || flags.contains("fail") {
                continue;
            }
            let url = first.replacen(&host_port, addr, 1);
            let mut node = redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            for script in scripts {
                script.load_async(&mut node).await?;
            }
        }
        Ok(())
    }
}

/// The nodes `url` names: one URL, or several separated by commas (a cluster's seed nodes).
pub fn seed_urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The first node `url` names (for pub/sub, which a cluster broadcasts to every node).
pub fn first_url(url: &str) -> &str {
    seed_urls(url).first().copied().unwrap_or(url)
}

/// Open a self-healing connection to one Redis server with production timeouts (not redis-rs'
/// 500 ms default). For Celery's broker and result backend, which are never a cluster.
pub async fn connect_single(url: &str) -> RedisResult<ConnectionManager> {
    // redis-rs leaves Nagle's algorithm on: a command written while an earlier one is
    // unacknowledged (the API keeps several page-view batches in flight) would wait for Redis' ACK.
    let info = redis::IntoConnectionInfo::into_connection_info(url)?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info)?;
    client
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2)),
        )
        .await
}

/// Connect to the fleet's Redis at `url` (`REDIS_URL`): a cluster when `url` names several nodes
/// or its one node says `cluster_enabled:1`, else one server. A cluster also switches this
/// process's key names to the cluster layout ([`crate::keys::use_layout`]); call it once, at
/// start, before any key is built.
pub async fn connect(url: &str) -> RedisResult<RedisConn> {
    let seeds = seed_urls(url);
    if seeds.len() <= 1 {
        let mut one = connect_single(url).await?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut one)
            .await?;
        if !info.contains("cluster_enabled:1") {
            return Ok(RedisConn::Single(one));
        }
    }
    let conn = ClusterClient::builder(seeds)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(10))
        .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
        .retries(16)
        .min_retry_wait(50)
        .max_retry_wait(2000)
        .build()?
        .get_async_connection()
        .await?;
    crate::keys::use_layout(crate::keys::Layout::Cluster);
    Ok(RedisConn::Cluster(conn))
}
