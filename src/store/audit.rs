//! The audit trail: one entry per change, in the order made.

use super::codec::{decode, encode};
use super::{AUDIT_TREE, Store, StoreResult};
use crate::model::AuditEvent;

impl Store {
    /// Appends an entry to the audit trail, durably.
    pub fn audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.audit_with_next_flush(event)?;
        self.flush()
    }

    /// Appends an audit event that becomes durable with the next flush (for
    /// a caller that writes and flushes its subject right after).
    pub fn audit_with_next_flush(&self, event: &AuditEvent) -> StoreResult<()> {
        let id = self.t()?.db.generate_id()?;
        self.t()?
            .audit
            .insert(id.to_be_bytes(), encode(AUDIT_TREE, event)?)?;
        Ok(())
    }

    /// Calls `visit` with each entry, newest first, until it returns false.
    pub fn walk_audit_newest(&self, mut visit: impl FnMut(AuditEvent) -> bool) -> StoreResult<()> {
        for entry in self.t()?.audit.iter().rev() {
            if !visit(decode(AUDIT_TREE, &entry?.1)?) {
                break;
            }
        }
        Ok(())
    }

    /// The most recent `limit` audit entries, oldest first.
    pub fn recent_audit(&self, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        let mut events: Vec<AuditEvent> = self
            .t()?
            .audit
            .iter()
            .rev()
            .take(limit)
            .map(|entry| decode(AUDIT_TREE, &entry?.1))
            .collect::<StoreResult<_>>()?;
        events.reverse();
        Ok(events)
    }
}
