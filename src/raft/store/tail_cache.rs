//! The newest entries of one group's log, in memory.
//!
//! Replication and apply read what was just appended; serving them from
//! here saves a RocksDB iterator per read. The cache is bounded twice: by
//! entries and by bytes (a batch can carry hundreds of commands), so a
//! node's memory does not grow with the size of its batches.
//!
//! Invariant: the cache holds a contiguous run of indexes ending at the
//! newest entry appended, equal to what is on disk (`append`, `truncate`
//! and `purge` keep it so); a read is answered only if the cache holds
//! every entry of the range that exists.

use std::collections::BTreeMap;

use crate::raft::types::Entry;

/// Most entries kept per group.
const MAX_ENTRIES: usize = 1024;
/// Most bytes of entry data kept per group.
const MAX_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct TailCache {
    entries: BTreeMap<u64, Entry>,
    bytes: usize,
}

fn size(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(p) => 64 + p.len(),
        _ => 64,
    }
}

impl TailCache {
    /// The entries `start..end` if the cache holds all that exist of them.
    pub fn range(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let (&first, &last) = (self.entries.keys().next()?, self.entries.keys().next_back()?);
        if start < first || start > last.saturating_add(1) {
            return None;
        }
        Some(self.entries.range(start..end).map(|(_, e)| e.clone()).collect())
    }

    /// Adds appended entries (a gap starts the cache over), then trims the
    /// oldest past the bounds.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            let index = entry.log_id.index;
            let last = self.entries.keys().next_back().copied();
            if last.is_some_and(|last| index != last + 1 && !self.entries.contains_key(&index)) {
                self.clear();
            }
            self.bytes += size(&entry);
            if let Some(old) = self.entries.insert(index, entry) {
                self.bytes -= size(&old);
            }
        }
        while self.entries.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.entries.len() > 1) {
            if let Some((_, old)) = self.entries.pop_first() {
                self.bytes -= size(&old);
            }
        }
    }

    /// Keeps only the entries `index` satisfies `keep` for (a truncation
    /// keeps a prefix, a purge a suffix: the run stays contiguous).
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let bytes = &mut self.bytes;
        self.entries.retain(|&index, e| {
            let kept = keep(index);
            if !kept {
                *bytes -= size(e);
            }
            kept
        });
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}
