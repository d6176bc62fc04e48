//! The holders of one lock: a small map from key to holder.
//!
//! Most locks have one holder, a semaphore a few; a `BTreeMap` spends a
//! whole node (hundreds of bytes) on one entry. This keeps the entries in a
//! vector sorted by key instead: the same iteration order as the map it
//! replaces (so every replica and every reply lists holders alike), and the
//! same serialised form, a map, so snapshots of either read back. The
//! vector is a boxed slice of exactly its length (16 bytes in the lock, not
//! 24): holders change by one grant or end at a time, and a lock has few.
//!
//! Invariant: keys are unique and in ascending order.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{LockKey, Mode};

/// A holder of some permits of a lock (its value, if any, is kept in
/// [`super::Values`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub permits: u32,
    pub mode: Mode,
    /// First fencing token; the holder owns `token..token + permits`.
    pub token: u64,
    pub ttl_ms: u64,
    /// Log index of the grant or last refresh; an expiry must name it.
    pub lease_index: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    entries: Box<[(LockKey, Holder)]>,
}

impl Holders {
    fn find(&self, key: &LockKey) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &LockKey) -> Option<&Holder> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &LockKey) -> Option<&mut Holder> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, key: &LockKey) -> bool {
        self.find(key).is_ok()
    }

    /// Inserts or replaces the holder of `key`.
    pub fn insert(&mut self, key: LockKey, holder: Holder) {
        match self.find(&key) {
            Ok(i) => self.entries[i].1 = holder,
            Err(i) => {
                let mut entries = Vec::with_capacity(self.entries.len() + 1);
                entries.extend(self.drain());
                entries.insert(i, (key, holder));
                self.entries = entries.into_boxed_slice();
            }
        }
    }

    pub fn remove(&mut self, key: &LockKey) -> Option<Holder> {
        let i = self.find(key).ok()?;
        let mut entries = self.drain();
        let (_, holder) = entries.remove(i);
        self.entries = entries.into_boxed_slice();
        Some(holder)
    }

    /// Takes every holder out, in key order.
    pub fn drain(&mut self) -> Vec<(LockKey, Holder)> {
        std::mem::take(&mut self.entries).into_vec()
    }

    /// Every holder, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&LockKey, &Holder)> {
        self.entries.iter().map(|(k, h)| (k, h))
    }

    pub fn keys(&self) -> impl Iterator<Item = &LockKey> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Holder> {
        self.entries.iter().map(|(_, h)| h)
    }
}

impl<'a> IntoIterator for &'a Holders {
    type Item = (&'a LockKey, &'a Holder);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (LockKey, Holder)>, fn(&'a (LockKey, Holder)) -> (&'a LockKey, &'a Holder)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, h)| (k, h))
    }
}

impl Serialize for Holders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, h) in &self.entries {
            map.serialize_entry(k, h)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Holders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Holders;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of holder keys to holders")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Holders, A::Error> {
                let mut holders = Holders::default();
                while let Some((key, holder)) = access.next_entry::<LockKey, Holder>()? {
                    holders.insert(key, holder);
                }
                Ok(holders)
            }
        }
        d.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(token: u64) -> Holder {
        Holder { permits: 1, mode: Mode::Exclusive, token, ttl_ms: 1000, lease_index: token }
    }

    fn key(k: &str) -> LockKey {
        LockKey::new(k).unwrap()
    }

    #[test]
    fn behaves_as_the_sorted_map_it_replaces() {
        let mut h = Holders::default();
        let mut m = std::collections::BTreeMap::new();
        for (i, k) in ["m", "c", "x", "a", "c"].iter().enumerate() {
            h.insert(key(k), holder(i as u64));
            m.insert(key(k), holder(i as u64));
        }
        assert_eq!(
            h.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(),
            m.clone().into_iter().collect::<Vec<_>>()
        );
        assert_eq!(h.remove(&key("c")), m.remove(&key("c")));
        assert_eq!(h.remove(&key("zz")), None);
        assert_eq!((h.len(), h.contains_key(&key("a")), h.get(&key("x")).map(|x| x.token)), (3, true, Some(2)));
        // Serialised as a map: JSON snapshots of the BTreeMap era read back.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Holders>(&json).unwrap(), h);
        assert_eq!(serde_json::to_string(&h).unwrap(), json);
        let bin = postcard::to_allocvec(&h).unwrap();
        assert_eq!(postcard::from_bytes::<Holders>(&bin).unwrap(), h);
    }
}
