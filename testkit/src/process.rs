//! Child processes of a test: the workspace binaries (the `worker`, the `api`, ...) started with
//! the test's environment, killed (SIGKILL) when their handle is dropped, also on panic.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::env::bin_path;

/// `program` as a command whose child is killed when dropped, with stdin and stdout discarded
/// and `RUST_LOG=error` (a later `.env("RUST_LOG", ...)` overrides it); stderr is inherited.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

/// [`command`] for the workspace binary `name` ([`bin_path`]).
pub fn bin_command(name: &str) -> Command {
    command(bin_path(name))
}

/// The built `worker` binary running (`worker run`) with `env` on top of the test's own.
pub fn spawn_worker<I, K, V>(env: I) -> Child
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    bin_command("worker")
        .arg("run")
        .envs(env)
        .spawn()
        .expect("start the worker binary")
}

/// Send SIGTERM to `child` and wait for it to exit, at most `within`; panics if it does not.
pub async fn sigterm(child: &mut Child, within: Duration) -> ExitStatus {
    let pid = child.id().expect("the process is running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "kill -TERM {pid}");
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("process {pid} did not stop within {within:?} of SIGTERM"))
        .expect("wait for the process")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigterm_stops_a_child_and_reports_its_status() {
        let mut child = command("sleep").arg("30").spawn().expect("sleep");
        let status = sigterm(&mut child, Duration::from_secs(10)).await;
        assert!(!status.success(), "killed by the signal: {status}");
    }
}
