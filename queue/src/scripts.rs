//! The Lua scripts, loaded once per process and run by SHA (EVALSHA, falling back to EVAL).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

script!(PUSH, "push.lua");
script!(FETCH, "fetch.lua");
script!(ACK, "ack.lua");
script!(RENEW, "renew.lua");
script!(STATS, "stats.lua");
script!(INFO, "info.lua");
script!(REQUEUE, "requeue.lua");
script!(DISCARD, "discard.lua");
script!(CLEANUP, "cleanup.lua");
script!(ADOPT, "adopt.lua");
