//! The test's environment: numbers from variables, the workspace's paths and built binaries,
//! libfaketime.

use std::path::{Path, PathBuf};

/// The number in variable `name`, or `default` when it is unset or not a number (sizes of the
/// long forms of the fault and fuzz tests: `FAULT_JOBS`, `SCHEMATHESIS_SECONDS`, ...).
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The workspace's root directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is in the workspace")
        .to_path_buf()
}

/// Where the workspace binaries are: `$CELERIAC_BIN_DIR`, else `<target>/debug` (`scripts/test.sh`
/// builds them; long fault runs point `CELERIAC_BIN_DIR` at `target/release`).
pub fn bin_dir() -> PathBuf {
    std::env::var("CELERIAC_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_dir().join("target"))
                .join("debug")
        })
}

/// Path of the workspace binary `name` in [`bin_dir`]; panics when it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// libfaketime's preload library (Debian package `faketime`; `scripts/services.sh` installs it),
/// for running a process on a skewed wall clock (`LD_PRELOAD`, `FAKETIME=-5s`,
/// `FAKETIME_DONT_FAKE_MONOTONIC=1` so timers keep running on the real monotonic clock).
pub fn libfaketime() -> PathBuf {
    let candidates = [
        std::env::var("LIBFAKETIME").unwrap_or_default(),
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into(),
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1".into(),
        "/usr/lib/faketime/libfaketime.so.1".into(),
    ];
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libfaketime is missing: apt-get install faketime (scripts/services.sh does)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_num_reads_numbers_and_falls_back_otherwise() {
        assert_eq!(env_num("TESTKIT_SURELY_UNSET_VARIABLE", 7), 7);
        // PATH is set and not a number.
        assert_eq!(env_num("PATH", 3), 3);
    }

    #[test]
    fn the_workspace_dir_holds_the_workspace_manifest() {
        assert!(workspace_dir().join("Cargo.toml").exists());
        assert!(workspace_dir().join("testkit").is_dir());
    }
}
