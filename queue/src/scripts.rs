//! The Lua scripts, loaded once per process and run by SHA (EVALSHA, falling back to EVAL).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

const PUSH_SOURCE: &str = include_str!("../lua/push.lua");
const PUSH_LIB_END: &str = "-- end of push_lib\n";

/// The Lua functions that store a job (`queue_entry`, `queue_push`; the head of `lua/push.lua`): a
/// prelude for scripts of other crates that enqueue inside a larger atomic write. The caller
/// publishes on [`crate::Keys::notify`] itself.
pub fn push_lib() -> &'static str {
    PUSH_SOURCE
        .split_once(PUSH_LIB_END)
        .map_or(PUSH_SOURCE, |(lib, _)| lib)
}

/// A script that starts with `lua/bucket.lua`, the token bucket's functions.
macro_rules! bucket_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../lua/bucket.lua"),
                include_str!(concat!("../lua/", $file))
            ))
        });
    };
}

script!(PUSH, "push.lua");
bucket_script!(FETCH, "fetch.lua");
script!(ACK, "ack.lua");
script!(RENEW, "renew.lua");
script!(STATS, "stats.lua");
script!(INFO, "info.lua");
script!(REQUEUE, "requeue.lua");
script!(DISCARD, "discard.lua");
script!(CLEANUP, "cleanup.lua");
script!(ADOPT, "adopt.lua");
script!(LIST, "list.lua");
script!(RUN_NOW, "runnow.lua");
script!(REVOKE, "revoke.lua");
bucket_script!(RATE, "rate.lua");

/// Every script of the queue, for loading them into every node at start
/// (`domain::conn::RedisConn::load_scripts`): a replica promoted by a failover then knows them
/// (a replica sees a script's effects, never the script).
pub fn all_scripts() -> Vec<&'static Script> {
    vec![
        &*PUSH,
        &*FETCH,
        &*ACK,
        &*RENEW,
        &*STATS,
        &*INFO,
        &*REQUEUE,
        &*DISCARD,
        &*CLEANUP,
        &*ADOPT,
        &*LIST,
        &*RUN_NOW,
        &*REVOKE,
        &*RATE,
        &*crate::client::ERASE,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_library_is_the_head_of_push_lua() {
        let lib = push_lib();
        assert!(lib.len() < PUSH_SOURCE.len());
        assert!(lib.contains("local function queue_push("));
        assert!(!lib.contains("redis.call('TIME')"));
    }
}
