//! Erasure's other half on the job side: a job that read a visitor's data before the visitor was
//! erased removes what it wrote.

use domain::db::Db;
use domain::keys::Fingerprint;

use super::{StoreError, VisitorReads};

/// Undo a job's writes for `session_id` when the visitor was erased after the job read its data
/// (at `read_ms`, Redis's clock): erasure sets `erased:anon:{sha256(fp)}` before it deletes, so a
/// job whose read came first either wrote before the deletion (and erasure removed it) or finds
/// the mark here, after its own commit, and removes what it wrote. Returns whether it did.
pub async fn undo_if_erased(
    db: &Db,
    reads: &VisitorReads,
    fingerprint: &Fingerprint,
    session_id: uuid::Uuid,
    read_ms: i64,
) -> Result<bool, StoreError> {
    let erased = reads.erased_at(fingerprint).await?;
    if erased.is_none_or(|at| at < read_ms) {
        return Ok(false);
    }
    domain::sql::execute(
        db,
        "DELETE FROM analytics_anonymoussession WHERE id = $1",
        vec![session_id.into()],
    )
    .await?;
    tracing::info!("the visitor was erased while this job ran; its writes were undone");
    Ok(true)
}
