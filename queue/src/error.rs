//! The queue's error type.

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A script answered with a shape this crate does not expect (a bug or a foreign key layout).
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The Redis server is older than the queue's scripts need ([`crate::MIN_REDIS_VERSION`]).
    #[error(
        "Redis {found} is too old: Celeriac's queue needs Redis {required} or newer (INFO server redis_version)"
    )]
    RedisTooOld {
        /// The `redis_version` the server reports (`unknown` when it reports none).
        found: String,
        /// The oldest version that works.
        required: crate::version::RedisVersion,
    },
}
