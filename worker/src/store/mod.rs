//! What the jobs read and write around an anonymous session: the visitor's Redis state
//! (`visitor`), the buffered views and their rows (`views`), the session row (`session_row`),
//! the batching session writer (`writer`), the coalesced reads of visitors' keys (`reads`), the
//! batch loop both run on (`batches`) and erasure's undo (`erasure`). Each function takes
//! the handles it uses.

mod batches;
mod erasure;
mod reads;
mod session_row;
mod views;
mod visitor;
mod writer;

pub use erasure::undo_if_erased;
pub use reads::VisitorReads;
pub use session_row::end_session;
pub use views::flush_page_views;
pub use visitor::{Snapshot, forget_if_done};
pub use writer::{SessionWriter, upsert_many};

use sea_orm::DbErr;

/// Why a session document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed (transient).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The database failed (transient).
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The document in Redis is not a session document (permanent).
    #[error("anon_session document does not decode: {0}")]
    BadDocument(serde_json::Error),
}
