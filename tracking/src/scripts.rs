//! The hot-path Lua scripts, loaded once per process and run by SHA.

use std::sync::LazyLock;

use redis::Script;

/// A batch of anonymous page views ([`crate::batch`]), with the queue crate's push functions.
/// It declares flags (`#!lua`, Redis 7): a server over `maxmemory` refuses the whole run before
/// it starts, rather than failing a write halfway through a view.
pub(crate) static VIEWS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            "#!lua\n",
            include_str!("../lua/count.lua"),
            include_str!("../lua/community_lib.lua"),
            queue::push_lib(),
            include_str!("../lua/views.lua"),
        ]
        .concat(),
    )
});
pub(crate) static AUTH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/count.lua"),
        include_str!("../lua/auth.lua")
    ))
});
pub(crate) static COMMUNITY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/community_lib.lua"),
        include_str!("../lua/community.lua")
    ))
});
pub(crate) static COMMUNITY_STATS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/community_stats.lua")));
/// On a Redis Cluster, the visitor's own step of an anonymous page view ([`crate::split`]).
pub(crate) static VISIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/visit.lua")));
/// On a Redis Cluster, the day's step of a page view ([`crate::split`]).
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/count.lua"),
        include_str!("../lua/count_one.lua")
    ))
});

/// The tracking scripts, for loading them into every node at start (as
/// [`queue::all_scripts`]).
pub fn all_scripts() -> Vec<&'static Script> {
    vec![
        &*VIEWS,
        &*AUTH,
        &*COMMUNITY,
        &*COMMUNITY_STATS,
        &*VISIT,
        &*COUNT,
    ]
}
