//! The [`Driver`]: owns a backend's background tasks, hands back unstarted jobs and drains
//! outcomes when the worker stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::inbox::HandBack;

/// The background tasks of one backend. When the worker is told to stop, call
/// [`Driver::hand_back_unstarted`]; once it has stopped (or its time is up), [`Driver::finish`].
pub struct Driver {
    pub(super) fetcher: JoinHandle<()>,
    pub(super) acker: JoinHandle<()>,
    pub(super) helpers: Vec<JoinHandle<()>>,
    pub(super) inbox: Arc<dyn HandBack>,
    /// Tells the acker to record what it has been given and stop.
    pub(super) closing: watch::Sender<bool>,
}

impl Driver {
    /// Stop leasing and hand back at once every job fetched but not yet started: it goes to the
    /// head of its queue without costing an attempt, free for other workers while this one
    /// finishes the jobs it is running. Returns how many were handed back. Call it when the
    /// worker is told to stop.
    pub fn hand_back_unstarted(&self) -> usize {
        self.inbox.hand_back()
    }

    /// Record every outcome and hand-back given so far (at most `timeout`), then stop the
    /// background tasks. Call it once the worker has stopped, or has been given up on: an outcome
    /// of a job still running is not waited for. Whatever is not recorded stays leased and runs
    /// again elsewhere once its lease expires: nothing is lost. Drivers of one process may finish
    /// concurrently.
    pub async fn finish(self, timeout: Duration) {
        let Driver {
            fetcher,
            acker,
            helpers,
            inbox,
            closing,
        } = self;
        let (stop_fetcher, stop_acker) = (fetcher.abort_handle(), acker.abort_handle());
        let drained = async {
            inbox.hand_back();
            let _ = fetcher.await;
            // A job the fetcher was passing on when the buffer closed is in it now.
            inbox.hand_back();
            let _ = closing.send(true);
            let _ = acker.await;
        };
        if tokio::time::timeout(timeout, drained).await.is_err() {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "queue driver did not drain in time; unrecorded leases will expire and rerun"
            );
            stop_fetcher.abort();
            stop_acker.abort();
        }
        for h in helpers {
            h.abort();
        }
    }
}
