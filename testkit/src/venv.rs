//! The Python tool environments that `scripts/tool-envs.sh` makes (tests never install one).

/// A Python tool environment that `scripts/tool-envs.sh` made (tests never install one):
/// `<target>/tool-envs/<name>`, made from `requirements`, the text of
/// `scripts/tool-envs/<name>.txt` compiled into the test. Panics, naming the script, when it is
/// missing, unfinished, or made from other pins.
fn tool_env(name: &str, requirements: &str) -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    let dir = workspace.join(target).join("tool-envs").join(name);
    match std::fs::read_to_string(dir.join(".complete")) {
        Ok(made) if made == requirements => dir,
        Ok(_) => panic!(
            "{} was made from other pins than scripts/tool-envs/{name}.txt: run scripts/tool-envs.sh",
            dir.display()
        ),
        Err(e) => panic!(
            "no Python tool environment at {} ({e}): run scripts/tool-envs.sh first \
             (scripts/test.sh does)",
            dir.display()
        ),
    }
}

/// A Python with `celery[redis]` 5.7 (pins: `scripts/tool-envs/celery.txt`).
pub fn celery_python() -> std::path::PathBuf {
    tool_env("celery", include_str!("../../scripts/tool-envs/celery.txt")).join("bin/python")
}

/// The `schemathesis` command (pinned: `scripts/tool-envs/schemathesis.txt`).
pub fn schemathesis_bin() -> std::path::PathBuf {
    tool_env(
        "schemathesis",
        include_str!("../../scripts/tool-envs/schemathesis.txt"),
    )
    .join("bin/schemathesis")
}

/// A Python with `redis-py` (pins: `scripts/tool-envs/redis-py.txt`).
pub fn redis_py_python() -> std::path::PathBuf {
    tool_env(
        "redis-py",
        include_str!("../../scripts/tool-envs/redis-py.txt"),
    )
    .join("bin/python")
}

/// A Python with Selenium (pins: `scripts/tool-envs/selenium.txt`), for the console's browser
/// tests.
pub fn selenium_python() -> std::path::PathBuf {
    tool_env(
        "selenium",
        include_str!("../../scripts/tool-envs/selenium.txt"),
    )
    .join("bin/python")
}

/// A Python with Django and PostgreSQL's driver (pins: `scripts/tool-envs/django.txt`), into which
/// `scripts/python-package.sh` installs the `celeriac-django` wheel.
pub fn django_python() -> std::path::PathBuf {
    tool_env("django", include_str!("../../scripts/tool-envs/django.txt")).join("bin/python")
}

/// A Python with a MaxMind DB writer (pins: `scripts/tool-envs/mmdb.txt`), for the geolocation
/// tests' own City database.
pub fn mmdb_python() -> std::path::PathBuf {
    tool_env("mmdb", include_str!("../../scripts/tool-envs/mmdb.txt")).join("bin/python")
}

/// The `celery` command with Flower 2.0 (pins: `scripts/tool-envs/flower.txt`): `celery flower`.
pub fn flower_celery_bin() -> std::path::PathBuf {
    tool_env("flower", include_str!("../../scripts/tool-envs/flower.txt")).join("bin/celery")
}
