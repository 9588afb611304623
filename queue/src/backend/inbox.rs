//! The prefetch buffer between the fetcher and the worker, and the hand-back of what it still
//! holds.

use std::sync::Mutex;

use apalis_core::task::Task;
use tokio::sync::mpsc;

use super::JobLease;
use crate::client::Ack;

/// The prefetch buffer: jobs leased and not yet started. The backend hands them to the worker;
/// the driver, or the backend when it is dropped, hands them back to the queue.
pub(super) struct Inbox<Args> {
    pub(super) rx: Mutex<mpsc::Receiver<Task<Args>>>,
    pub(super) acks: mpsc::UnboundedSender<Ack>,
}

impl<Args> Inbox<Args> {
    pub(super) fn rx(&self) -> std::sync::MutexGuard<'_, mpsc::Receiver<Task<Args>>> {
        self.rx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Close the buffer (the fetcher stops, the worker gets nothing more) and hand back every job
    /// in it: to the head of its queue, no attempt counted. Returns how many.
    pub(super) fn hand_back(&self) -> usize {
        let mut rx = self.rx();
        rx.close();
        let mut n = 0;
        while let Ok(task) = rx.try_recv() {
            if let Some(lease) = task.data().get::<JobLease>() {
                let _ = self.acks.send(Ack::Release {
                    id: lease.id.clone(),
                    token: lease.token,
                });
                n += 1;
            }
        }
        n
    }
}

/// [`Inbox::hand_back`] without the job's argument type, for the driver.
pub(super) trait HandBack: Send + Sync {
    fn hand_back(&self) -> usize;
}

impl<Args: Send> HandBack for Inbox<Args> {
    fn hand_back(&self) -> usize {
        Inbox::hand_back(self)
    }
}
