//! The acknowledgement middleware: turns a handler's result into an outcome (done, snooze, retry
//! with backoff, or dead) and passes it to the acker.

use std::convert::Infallible;
use std::future::{Ready, ready};

use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::ExecutionContext;
use apalis_core::worker::ext::ack::Acknowledge;
use tokio::sync::mpsc;

use super::{JobLease, Snooze};
use crate::backoff::Backoff;
use crate::client::Ack;

/// Turns a handler's result into an outcome: done, snooze, retry with backoff, or dead.
#[derive(Clone)]
pub struct Acker {
    pub(super) acks: mpsc::UnboundedSender<Ack>,
    pub(super) max_attempts: u32,
    pub(super) backoff: Backoff,
}

impl Acker {
    /// The outcome of attempt `lease.attempt` ending with `res`.
    pub fn outcome<Res>(&self, lease: &JobLease, res: &Result<Res, BoxDynError>) -> Ack {
        let (id, attempt, token) = (lease.id.clone(), lease.attempt, lease.token);
        let err = match res {
            Ok(_) => return Ack::Done { id, token },
            Err(e) => e,
        };
        // Before the attempt limit: a snooze is not a failure, whatever the attempt.
        if let Some(Snooze(delay)) = err.downcast_ref::<Snooze>() {
            return Ack::Snooze {
                id,
                token,
                delay: *delay,
            };
        }
        if err.downcast_ref::<AbortError>().is_some() || attempt >= self.max_attempts {
            let error = if err.downcast_ref::<AbortError>().is_some() {
                err.to_string()
            } else {
                format!("{err} (attempt {attempt} of {})", self.max_attempts)
            };
            return Ack::Dead { id, token, error };
        }
        let delay = err
            .downcast_ref::<RetryAfterError>()
            .map(|r| r.get_duration())
            .unwrap_or_else(|| self.backoff.delay(attempt));
        Ack::Retry {
            id,
            token,
            delay,
            error: err.to_string(),
        }
    }
}

impl<Res> Acknowledge<Res> for Acker {
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn ack(&mut self, res: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        if let Some(lease) = ctx.data().get::<JobLease>() {
            let _ = self.acks.send(self.outcome(lease, res));
        }
        ready(Ok(()))
    }
}
