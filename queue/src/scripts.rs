//! The Lua scripts, loaded once per process and run by SHA (EVALSHA, falling back to EVAL).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

/// The Lua functions that store a job (`queue_entry`, `queue_push`): a prelude for scripts of
/// other crates that enqueue inside a larger atomic write. The caller publishes on
/// [`crate::Keys::notify`] itself.
pub const PUSH_LIB: &str = include_str!("../lua/push_lib.lua");

pub(crate) static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/push_lib.lua"),
        include_str!("../lua/push.lua")
    ))
});
script!(FETCH, "fetch.lua");
script!(ACK, "ack.lua");
script!(RENEW, "renew.lua");
script!(STATS, "stats.lua");
script!(INFO, "info.lua");
script!(REQUEUE, "requeue.lua");
script!(DISCARD, "discard.lua");
script!(CLEANUP, "cleanup.lua");
script!(ADOPT, "adopt.lua");
