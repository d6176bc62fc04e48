//! The values of a group's holders, kept beside the locks.
//!
//! Most holders carry no value, and a holder is 32 bytes that a table keeps
//! one of per held lock: a value field would grow every holder by half.
//! Values live here instead, by lock name and holder key, and cost nothing
//! for the holders that carry none.
//!
//! Invariants: every entry belongs to a live holder of its lock (the lock
//! sets it at a grant and takes it at the end of the hold, in the same
//! apply step); no entry is empty of values (a lock with none has no entry).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LockKey, Name, Value};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Values {
    by_lock: BTreeMap<Name, BTreeMap<LockKey, Value>>,
}

impl Values {
    /// The value `key` carries on lock `name`, if any.
    pub fn get(&self, name: &str, key: &LockKey) -> Option<&Value> {
        self.by_lock.get(name)?.get(key)
    }

    /// Every value of lock `name`, by holder key.
    pub fn of_lock(&self, name: &str) -> impl Iterator<Item = (&LockKey, &Value)> {
        self.by_lock.get(name).into_iter().flat_map(|values| values.iter())
    }

    /// Sets (or, with `None`, clears) the value `key` carries on `name`.
    pub fn set(&mut self, name: &Name, key: &LockKey, value: Option<Value>) {
        match value {
            Some(value) => {
                self.by_lock.entry(name.clone()).or_default().insert(key.clone(), value);
            }
            None => {
                self.take(name, key);
            }
        }
    }

    /// Removes and returns the value `key` carried on `name`.
    pub fn take(&mut self, name: &str, key: &LockKey) -> Option<Value> {
        let values = self.by_lock.get_mut(name)?;
        let value = values.remove(key);
        if values.is_empty() {
            self.by_lock.remove(name);
        }
        value
    }

    /// Every (lock, key) that carries a value.
    pub fn entries(&self) -> impl Iterator<Item = (&Name, &LockKey)> {
        self.by_lock.iter().flat_map(|(name, values)| values.keys().map(move |key| (name, key)))
    }

    pub fn is_empty(&self) -> bool {
        self.by_lock.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_take_and_no_empty_entries() {
        let (name, k1, k2): (Name, _, _) = ("a".into(), LockKey::new("k1").unwrap(), LockKey::new("k2").unwrap());
        let mut values = Values::default();
        values.set(&name, &k1, Some(Value::from("x")));
        values.set(&name, &k2, Some(Value::from("y")));
        assert_eq!(values.get("a", &k1), Some(&Value::from("x")));
        assert_eq!(values.of_lock("a").count(), 2);
        values.set(&name, &k1, None);
        assert_eq!(values.take("a", &k2), Some(Value::from("y")));
        assert!(values.is_empty(), "the lock's entry went with its last value");
        assert_eq!(values.take("a", &k2), None);
    }
}
