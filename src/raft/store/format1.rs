//! Log entries of format 1: JSON, one lock command as an entry's data (the
//! format written before batches; see `crate::codec`).
//!
//! Invariant: an entry of format 1 reads back as a batch of its one command
//! under [`Rules::V1`], the rules it was applied under when it was written,
//! so replaying an old log rebuilds the table that version built; entries of
//! any other format decode as they are.

use std::sync::Arc;

use crate::codec::{self, FORMAT_JSON};
use crate::lock::{Command, Rules};
use crate::raft::proposal::{Batch, Proposal};
use crate::raft::types::{Entry, NodeInfo, TypeConfig};

/// A log entry of format 1: one command as its data.
type LegacyEntry = openraft::Entry<
    openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>,
    openraft::EntryPayload<Command, u64, NodeInfo>,
>;

/// Decodes a stored log entry of either format.
pub fn decode_entry(bytes: &[u8]) -> std::io::Result<Entry> {
    if bytes.first() != Some(&FORMAT_JSON) {
        return codec::decode(bytes);
    }
    let legacy: LegacyEntry = codec::decode(bytes)?;
    let payload = match legacy.payload {
        openraft::EntryPayload::Blank => openraft::EntryPayload::Blank,
        openraft::EntryPayload::Membership(m) => openraft::EntryPayload::Membership(m),
        openraft::EntryPayload::Normal(cmd) => openraft::EntryPayload::Normal(Proposal::from_batch(Arc::new(Batch {
            rules: Rules::V1,
            commands: vec![cmd],
        }))),
    };
    Ok(Entry { log_id: legacy.log_id, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockKey;

    #[test]
    fn legacy_json_entries_read_as_one_command_under_v1() {
        let json = br#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":43},"payload":{"Normal":{"Release":{"name":"idle/d","key":"kd"}}}}"#;
        let bytes = [&[FORMAT_JSON][..], json].concat();
        let entry = decode_entry(&bytes).unwrap();
        assert_eq!(entry.log_id.index, 43);
        let openraft::EntryPayload::Normal(p) = entry.payload else { panic!("not a normal entry") };
        let batch = p.batch().unwrap();
        assert_eq!(batch.rules, Rules::V1);
        let key = LockKey::new("kd").unwrap();
        assert_eq!(batch.commands, vec![Command::Release { name: "idle/d".into(), key }]);
    }
}
