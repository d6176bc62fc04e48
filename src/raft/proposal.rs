//! The app data of a log entry: a batch of lock commands, encoded once.
//!
//! The leader's proposer gathers the commands that arrive for a group while
//! its previous write is in flight and proposes them as one entry. The
//! batch is encoded once, when the proposal is made; those bytes are what
//! the WAL stores and what AppendEntries carries, on every node, unchanged:
//! serialising a proposal writes its bytes, deserialising one copies them.
//! A node decodes the commands once, when it applies the entry (the leader
//! reuses the batch it encoded from).
//!
//! Layout of the bytes: a format byte (`FORMAT_BATCH`), then postcard of
//! [`Batch`] (the apply rules, then the commands).
//!
//! Log entries of format 1 (JSON) carry one command as their data; the log
//! store reads them as a batch of one command under [`Rules::V1`]
//! (`store::log::decode_entry`), so replaying an old log rebuilds the table
//! that version built.
//!
//! Invariants: the bytes never change after construction; every clone of a
//! proposal shares one decoded batch; a proposal built here always carries
//! [`Rules::CURRENT`].

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{self, FORMAT_POSTCARD};
use crate::lock::{Command, Rules};

/// The commands of one entry and the rules they apply under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub rules: Rules,
    pub commands: Vec<Command>,
}

/// One entry's data: the encoded batch, and what this node knows of it.
#[derive(Clone)]
pub struct Proposal {
    bytes: Bytes,
    /// The decoded batch (or why it does not decode), shared by clones.
    decoded: Arc<OnceLock<Result<Arc<Batch>, String>>>,
    /// When this node's proposer handed it to Raft: set on the leader that
    /// proposed it, for the `commit` stage; never serialised.
    submitted: Option<Instant>,
}

impl Proposal {
    /// A proposal of `commands` under the current rules, submitted now.
    pub fn new(commands: Vec<Command>) -> Self {
        let batch = Arc::new(Batch { rules: Rules::CURRENT, commands });
        let mut proposal = Self::from_batch(batch);
        proposal.submitted = Some(Instant::now());
        proposal
    }

    /// A proposal of `batch` as it was read from an older log.
    pub(super) fn from_batch(batch: Arc<Batch>) -> Self {
        let bytes = Bytes::from(codec::encode(&*batch));
        let decoded = Arc::new(OnceLock::from(Ok(batch)));
        Self { bytes, decoded, submitted: None }
    }

    fn from_bytes(bytes: Bytes) -> Self {
        Self { bytes, decoded: Arc::new(OnceLock::new()), submitted: None }
    }

    /// The batch, decoded on first use.
    pub fn batch(&self) -> Result<Arc<Batch>, String> {
        self.decoded
            .get_or_init(|| match self.bytes.first() {
                Some(&FORMAT_POSTCARD) => codec::decode::<Batch>(&self.bytes).map(Arc::new).map_err(|e| e.to_string()),
                Some(format) => Err(codec::unknown(*format).to_string()),
                None => Err("empty proposal".into()),
            })
            .clone()
    }

    /// When this node's proposer submitted it, if it did.
    pub fn submitted(&self) -> Option<Instant> {
        self.submitted
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Proposal {}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.batch() {
            Ok(batch) => write!(f, "{:?} {:?}", batch.rules, batch.commands),
            Err(why) => write!(f, "undecodable proposal of {} bytes: {why}", self.bytes.len()),
        }
    }
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.batch() {
            Ok(batch) if batch.commands.len() == 1 => write!(f, "{}", batch.commands[0]),
            Ok(batch) => write!(f, "{} commands", batch.commands.len()),
            Err(_) => write!(f, "undecodable proposal of {} bytes", self.bytes.len()),
        }
    }
}

impl Serialize for Proposal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Proposal;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the bytes of a proposal")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Proposal, E> {
                Ok(Proposal::from_bytes(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Proposal, E> {
                Ok(Proposal::from_bytes(Bytes::from(v)))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockKey;

    fn release(name: &str) -> Command {
        Command::Release { name: name.into(), key: LockKey::new("k").unwrap() }
    }

    #[test]
    fn bytes_travel_unchanged_and_decode_once() {
        let p = Proposal::new(vec![release("a"), release("b")]);
        assert!(p.submitted().is_some());
        let wire = postcard::to_allocvec(&p).unwrap();
        assert_eq!(&wire[wire.len() - p.len()..], &p.bytes[..], "serialising writes the bytes as they are");
        let back: Proposal = postcard::from_bytes(&wire).unwrap();
        assert_eq!(back, p);
        assert!(back.submitted().is_none(), "the submit time stays on the proposing node");
        let batch = back.batch().unwrap();
        assert_eq!(batch.rules, Rules::CURRENT);
        assert_eq!(batch.commands, vec![release("a"), release("b")]);
        assert!(Arc::ptr_eq(&batch, &back.clone().batch().unwrap()), "clones share the decoded batch");
    }

    #[test]
    fn garbage_is_refused_on_apply_not_on_receipt() {
        let p = Proposal::from_bytes(Bytes::from_static(&[7, 1, 2]));
        assert!(p.batch().unwrap_err().contains("format 7"));
        assert!(Proposal::from_bytes(Bytes::new()).batch().is_err());
    }
}
