//! The Redis key names of one queue; all share the queue's hash tag so scripts touch one slot.

/// Key names of one queue: `{namespace}:{<queue>}:<part>`.
#[derive(Debug, Clone)]
pub struct Keys {
    /// LIST of job ids ready to run, oldest first.
    pub pending: String,
    /// ZSET job id → due time (epoch ms): delayed jobs and retries waiting for their backoff.
    pub scheduled: String,
    /// ZSET job id → lease deadline (epoch ms): jobs a worker holds.
    pub running: String,
    /// HASH job id → `<epoch ms waiting since>|<payload JSON>`.
    pub jobs: String,
    /// HASH job id → attempts counted toward `max_attempts` (a hand-back or snooze gives one
    /// back, a requeue starts afresh).
    pub attempts: String,
    /// HASH job id → fencing token of the job's latest lease (never reused, see `lease_seq`).
    pub leases: String,
    /// STRING: the queue's lease counter; each lease takes the next value as its fencing token.
    pub lease_seq: String,
    /// HASH job id → last error.
    pub errors: String,
    /// ZSET job id → finish time (epoch ms), kept for the done retention.
    pub done: String,
    /// ZSET job id → death time (epoch ms), kept for the dead retention.
    pub dead: String,
    /// Prefix of the uniqueness keys (STRING → job id, with a TTL).
    pub unique_prefix: String,
    /// Pub/sub channel told about every push, so idle workers wake at once.
    pub notify: String,
    /// LIST where the Celery intake's idle wait moves a message (atomically) before a fetch
    /// leases it ([`crate::QueueConfig::lease_from`]); on a separate broker, the list there that
    /// holds messages until [`crate::Queue::adopt_messages`] has taken them.
    pub staging: String,
    /// STRING, present while the queue is paused (workers lease nothing from it).
    pub paused: String,
    /// HASH `t` (tokens, a decimal) and `at` (epoch ms of the last refill): the queue's token
    /// bucket while it has a rate limit ([`crate::RateLimit`]); it expires once full.
    pub rate: String,
    /// ZSET job id → revoke time (epoch ms): revoked jobs that were running when revoked. No
    /// fetch leases them again; their workers are told to stop them.
    pub revoked: String,
}

impl Keys {
    /// The keys of queue `queue` under `namespace`.
    pub fn new(namespace: &str, queue: &str) -> Self {
        let base = format!("{namespace}:{{{queue}}}");
        Self {
            pending: format!("{base}:pending"),
            scheduled: format!("{base}:scheduled"),
            running: format!("{base}:running"),
            jobs: format!("{base}:jobs"),
            attempts: format!("{base}:attempts"),
            leases: format!("{base}:leases"),
            lease_seq: format!("{base}:lease_seq"),
            errors: format!("{base}:errors"),
            done: format!("{base}:done"),
            dead: format!("{base}:dead"),
            unique_prefix: format!("{base}:unique:"),
            notify: format!("{base}:notify"),
            staging: format!("{base}:staging"),
            paused: format!("{base}:paused"),
            rate: format!("{base}:rate"),
            revoked: format!("{base}:revoked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_queue_hash_tag() {
        let k = Keys::new("celeriac", "persist_anonymous_session");
        for key in [
            &k.pending,
            &k.scheduled,
            &k.running,
            &k.jobs,
            &k.attempts,
            &k.leases,
            &k.lease_seq,
            &k.errors,
            &k.done,
            &k.dead,
            &k.notify,
            &k.staging,
            &k.paused,
            &k.rate,
            &k.revoked,
            &k.unique_prefix,
        ] {
            assert!(
                key.starts_with("celeriac:{persist_anonymous_session}:"),
                "{key}"
            );
        }
    }
}
