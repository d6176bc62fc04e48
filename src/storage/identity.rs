//! The identity of a data directory: which node and how many groups.
//!
//! Invariant: a data directory belongs to one node id and one group count
//! for its whole life. The first start writes `IDENTITY` (TOML, synced);
//! every later start compares, and a mismatch refuses to start — the group
//! count decides where every lock lives and can never change under a
//! running cluster.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "IDENTITY";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub format: u32,
    pub node_id: u64,
    pub groups: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot use data directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("data directory {dir} has an unreadable IDENTITY file: {why}")]
    Corrupt { dir: String, why: String },
    #[error(
        "data directory {dir} was created with groups = {found}, but the config says {configured}: \
         the group count is fixed for a cluster's life; set groups = {found} or use a new data directory"
    )]
    GroupsMismatch { dir: String, found: u32, configured: u32 },
    #[error(
        "data directory {dir} belongs to node {found}, but the config says node_id = {configured}: \
         fix node_id or data_dir"
    )]
    NodeMismatch { dir: String, found: u64, configured: u64 },
}

/// Records the identity on first use of `dir`, or checks it against the
/// recorded one. Returns true when the directory was new.
pub fn ensure(dir: &Path, node_id: u64, groups: u32) -> Result<bool, IdentityError> {
    let d = dir.display().to_string();
    let io = |source| IdentityError::Io { dir: d.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(FILE);
    let me = Identity { format: FORMAT, node_id, groups };
    if !path.exists() {
        let tmp = dir.join("IDENTITY.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let text = toml::to_string(&me).unwrap_or_default();
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        return Ok(true);
    }
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let found: Identity =
        toml::from_str(&text).map_err(|e| IdentityError::Corrupt { dir: d.clone(), why: e.to_string() })?;
    if found.groups != groups {
        return Err(IdentityError::GroupsMismatch { dir: d, found: found.groups, configured: groups });
    }
    if found.node_id != node_id {
        return Err(IdentityError::NodeMismatch { dir: d, found: found.node_id, configured: node_id });
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_records_then_mismatches_refuse() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure(dir.path(), 1, 64).unwrap());
        assert!(!ensure(dir.path(), 1, 64).unwrap());
        let err = ensure(dir.path(), 1, 32).unwrap_err().to_string();
        assert!(err.contains("groups = 64") && err.contains("says 32"), "{err}");
        assert!(matches!(ensure(dir.path(), 2, 64), Err(IdentityError::NodeMismatch { .. })));
    }
}
