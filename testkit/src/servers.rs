//! Servers of the test's own for fault tests: `redis-server`s and a PostgreSQL cluster on free
//! loopback ports, which a test may stop, kill and restart without touching anything shared. Each
//! is removed (process and data directory) on drop, also when the test panicked.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir (`celeriac-<tag>-<uuid>`), removed with
/// everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("celeriac-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listens on right now (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A free port whose cluster bus port (port + 10000) is free too.
pub fn free_cluster_port() -> u16 {
    for _ in 0..200 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else {
            continue;
        };
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// One redis-server process on a loopback port, started with the given extra arguments; killed
/// (SIGKILL) on drop.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start `redis-server --port <port> --bind 127.0.0.1 --dir <dir> <extra…>` and wait until it
    /// answers PING. Its log goes to `<dir>/redis-<port>.log`.
    pub fn start(port: u16, dir: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            dir.join(format!("redis-{port}.log")).display().to_string(),
            "--daemonize".into(),
            "no".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Self {
            port,
            args,
            child: None,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if self.cli(&["ping"]).is_some_and(|out| out.trim() == "PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `redis-cli -p <port> <args…>`; its stdout, or `None` when it failed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `redis-cli shutdown`, then wait for the process to exit.
    pub fn shutdown(&mut self) {
        let _ = self.cli(&["shutdown"]);
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {} ignored SHUTDOWN", self.port);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kill it (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the same server again (same port, same dir, same arguments).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after shutdown or kill only");
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of the test's own in a directory of its own, with no snapshots; persistence
/// only with `aof` (append-only file, fsync always).
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    // Declared before the directory: the server stops before its directory is removed.
    server: RedisServer,
    dir: TempDir,
}

impl PrivateRedis {
    /// Start one on a free port.
    pub fn start(aof: bool) -> Self {
        let dir = TempDir::new("redis");
        let port = free_port();
        let server = RedisServer::start(port, dir.path(), &Self::args(aof));
        Self { port, server, dir }
    }

    fn args(aof: bool) -> [&'static str; 6] {
        [
            "--save",
            "",
            "--appendonly",
            if aof { "yes" } else { "no" },
            "--appendfsync",
            "always",
        ]
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Kill it (SIGKILL).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Start it again on the same port and directory (killing it first if it runs).
    pub fn restart(&mut self, aof: bool) {
        self.server.kill();
        self.server = RedisServer::start(self.port, self.dir.path(), &Self::args(aof));
    }
}

/// A PostgreSQL cluster of the test's own (initdb, trust auth, fsync off), run as `postgres`.
pub struct PrivatePostgres {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// initdb and start one on a free port; database `postgres` exists.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir =
            std::env::temp_dir().join(format!("celeriac-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        let ok = Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown to postgres");
        let s = Self {
            port: free_port(),
            dir,
            bin,
        };
        let ok = s
            .as_postgres("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(s.dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "initdb");
        s.up();
        s
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        c
    }

    /// Start the server (after [`PrivatePostgres::stop`]).
    pub fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let ok = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pg_ctl start");
    }

    /// Stop the server at once (connections are cut).
    pub fn stop(&self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }

    /// URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PgBouncer (Debian's package; `scripts/services.sh` installs it) of the test's own, in
/// transaction pooling mode in front of the PostgreSQL a URL names, with `pool_size` server
/// connections per database and user. Nothing resets a server connection between clients
/// (PgBouncer's default in that mode). Runs as `postgres`; killed on drop.
pub struct PgBouncer {
    /// Its port.
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl PgBouncer {
    /// Start one in front of the server of `upstream_url` (`postgres://user@host:port/db`).
    pub fn start(upstream_url: &str, pool_size: u32) -> Self {
        let (host, port) = host_port(upstream_url);
        let dir = TempDir::new("pgbouncer");
        let listen = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").expect("write users.txt");
        let config = format!(
            "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {listen}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 2000\n\
             ignore_startup_parameters = extra_float_digits\nlogfile = {log}\n",
            users = users.display(),
            log = dir.path().join("pgbouncer.log").display(),
        );
        std::fs::write(&ini, config).expect("write pgbouncer.ini");
        let ok = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown to postgres");
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("pgbouncer");
        let mut child = Command::new(bin)
            .args(["-u", "postgres"])
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer is installed (scripts/services.sh installs Debian's package)");
        // Up when its log says it listens on the port (another process on a port that was free
        // a moment ago must not pass for it).
        let log = dir.path().join("pgbouncer.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("pgbouncer exited ({status}): {text}");
            }
            if text.contains(&format!("listening on 127.0.0.1:{listen}"))
                && std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen on {listen}: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port: listen,
            child,
            _dir: dir,
        }
    }

    /// `url` (a database of the upstream server) with its host and port this PgBouncer's.
    pub fn url_for(&self, url: &str) -> String {
        let (host, port) = host_port(url);
        url.replacen(
            &format!("@{host}:{port}/"),
            &format!("@127.0.0.1:{}/", self.port),
            1,
        )
    }
}

/// Host and port of a `scheme://user@host:port/db` URL.
fn host_port(url: &str) -> (String, u16) {
    let authority = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a URL with user@host:port/db");
    let (host, port) = authority.rsplit_once(':').expect("a URL with a port");
    (host.to_owned(), port.parse().expect("a numeric port"))
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Redis Cluster: `masters` primaries, each with `replicas` replicas, all on loopback
/// (`redis-cli --cluster create`), a 1 s node timeout; every node killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Start the nodes, join them and wait for `cluster_state:ok` on every node.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_cluster_port();
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            nodes.push(RedisServer::start(
                port,
                dir.path(),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf.display().to_string(),
                    "--cluster-node-timeout",
                    "1000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_ok();
        cluster
    }

    /// Wait (30 s at most) until every node says `cluster_state:ok` and agrees on the slots.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.nodes.iter().all(|n| {
            n.cli(&["cluster", "info"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(Instant::now() < deadline, "cluster_state never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node's own line of CLUSTER NODES (`id addr flags master …`).
    fn own_line(node: &RedisServer) -> String {
        node.cli(&["cluster", "nodes"])
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_default()
            .to_owned()
    }

    /// The node serving `slot` as primary (from each node's own line of CLUSTER NODES).
    pub fn primary_of(&self, slot: u16) -> &RedisServer {
        for node in &self.nodes {
            let line = Self::own_line(node);
            let owns = line
                .split_whitespace()
                .skip(8)
                .any(|range| match range.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().is_ok_and(|a| a <= slot)
                            && b.parse::<u16>().is_ok_and(|b| slot <= b)
                    }
                    None => range.parse::<u16>() == Ok(slot),
                });
            if owns && line.contains("master") {
                return node;
            }
        }
        panic!("no node serves slot {slot}");
    }

    /// A replica of `primary`.
    pub fn replica_of(&self, primary: &RedisServer) -> &RedisServer {
        let id = Self::own_line(primary)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        self.nodes
            .iter()
            .find(|n| {
                let line = Self::own_line(n);
                line.contains("slave") && line.split_whitespace().nth(3) == Some(id.as_str())
            })
            .expect("the primary has a replica")
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn slot(&self, key: &str) -> u16 {
        self.nodes[0]
            .cli(&["cluster", "keyslot", key])
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_redis_answers_survives_a_kill_and_leaves_nothing() {
        let mut redis = PrivateRedis::start(false);
        let dir = redis.dir.path().to_path_buf();
        let ping = |url: &str| {
            redis::Client::open(url)
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        };
        assert_eq!(ping(&redis.url()).ok().as_deref(), Some("PONG"));
        redis.kill();
        assert!(ping(&redis.url()).is_err());
        redis.restart(false);
        assert_eq!(ping(&redis.url()).ok().as_deref(), Some("PONG"));
        drop(redis);
        assert!(!dir.exists());
    }
}
