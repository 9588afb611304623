//! The hot-path Lua scripts, loaded once per process and run by SHA.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static ANON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/count.lua"),
        include_str!("../lua/anon.lua")
    ))
});
pub(crate) static AUTH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/count.lua"),
        include_str!("../lua/auth.lua")
    ))
});
pub(crate) static COMMUNITY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/community.lua")));
pub(crate) static COMMUNITY_STATS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/community_stats.lua")));
