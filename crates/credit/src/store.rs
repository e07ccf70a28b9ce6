//! The credit service's local store (sled): the facts it derived its registry from, and how far into the
//! stream it got. Derived state: a lost, stale or foreign store is rebuilt from the stream.
//!
//! | key | value |
//! | --- | --- |
//! | `m/version` | the store format, `1` |
//! | `m/rules` | a fingerprint of the rules the facts were applied under (terms, authority, catalogue) |
//! | `m/position` | big-endian u64: the last stream sequence applied |
//! | `m/anchor` | the event id of the message at `m/position` (to recognise the same stream) |
//! | `f` · sequence (8 bytes BE) | a fact (JSON [`Recorded`]): credit decisions, penalties, expiry announcements |
//!
//! Each batch of messages is one atomic [`sled::Batch`] (its facts, the new position and anchor), flushed
//! before the service considers the batch consumed; a crash loses at most a batch that is read again.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::registry::Recorded;

const VERSION: &[u8] = b"1";
const META_VERSION: &[u8] = b"m/version";
const META_RULES: &[u8] = b"m/rules";
const META_POSITION: &[u8] = b"m/position";
const META_ANCHOR: &[u8] = b"m/anchor";
const FACT_PREFIX: u8 = b'f';

fn fact_key(sequence: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = FACT_PREFIX;
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// What the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub position: u64,
    /// The event id at `position`.
    pub anchor: Option<String>,
    pub facts: Vec<Recorded>,
}

/// The sled store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CreditStore {
    db: sled::Db,
    dir: PathBuf,
}

impl CreditStore {
    /// Opens (creating) the store in `dir`. A store of another format or written under other rules is
    /// cleared (it is rebuilt from the stream).
    pub fn open(dir: &Path, rules_fingerprint: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let db = hazchem_bus::open_sled(dir)?;
        let store = CreditStore {
            db,
            dir: dir.to_owned(),
        };
        let version = store.db.get(META_VERSION)?;
        let rules = store.db.get(META_RULES)?;
        let same = version.as_deref() == Some(VERSION)
            && rules.as_deref() == Some(rules_fingerprint.as_bytes());
        if !same {
            if version.is_some() {
                tracing::warn!(
                    store = %dir.display(),
                    "the credit store was written by another format or under other rules; rebuilding it from the stream"
                );
            }
            store.db.clear()?;
            store.db.insert(META_VERSION, VERSION)?;
            store.db.insert(META_RULES, rules_fingerprint.as_bytes())?;
            store.db.flush()?;
        }
        Ok(store)
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The event id of the message at the stored position, if any.
    pub fn anchor(&self) -> Result<Option<String>> {
        Ok(self
            .db
            .get(META_ANCHOR)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Everything stored, facts in stream order.
    pub fn load(&self) -> Result<Stored> {
        let position = match self.db.get(META_POSITION)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::Corrupt("m/position is not 8 bytes".into()))?,
            ),
            None => 0,
        };
        let anchor = self.anchor()?;
        let mut facts = Vec::new();
        for item in self.db.scan_prefix([FACT_PREFIX]) {
            let (key, value) = item?;
            let fact: Recorded = serde_json::from_slice(&value).map_err(|e| {
                Error::Corrupt(format!(
                    "fact at key {} does not decode: {e}",
                    hex::encode(&key)
                ))
            })?;
            if fact.sequence > position {
                return Err(Error::Corrupt(format!(
                    "fact at sequence {} is after the stored position {position}",
                    fact.sequence
                )));
            }
            facts.push(fact);
        }
        Ok(Stored {
            position,
            anchor,
            facts,
        })
    }

    /// Stores a batch atomically and durably: its facts, the new position and the id of the message there.
    pub async fn append(&self, facts: &[Recorded], position: u64, anchor: &str) -> Result<()> {
        let mut batch = sled::Batch::default();
        for fact in facts {
            let bytes = serde_json::to_vec(fact)
                .map_err(|e| Error::Corrupt(format!("cannot encode a fact: {e}")))?;
            batch.insert(&fact_key(fact.sequence), bytes);
        }
        batch.insert(META_POSITION, &position.to_be_bytes());
        batch.insert(META_ANCHOR, anchor.as_bytes());
        self.db.apply_batch(batch)?;
        hazchem_bus::flush_sled(&self.db).await?;
        Ok(())
    }

    /// Forgets everything (the stream is not the one the store was built from).
    pub fn reset(&self) -> Result<()> {
        let version = self.db.get(META_VERSION)?;
        let rules = self.db.get(META_RULES)?;
        self.db.clear()?;
        if let Some(v) = version {
            self.db.insert(META_VERSION, v)?;
        }
        if let Some(r) = rules {
            self.db.insert(META_RULES, r)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests: any instant will do for a stored fact
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::registry::Fact;

    #[tokio::test]
    async fn batches_survive_reopening_and_other_rules_clear_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let fact = Recorded {
            sequence: 3,
            recorded_at: Utc::now(),
            fact: Fact::ExpiryAnnounced {
                event_id: "e".into(),
                listing_id: "CL-1".into(),
            },
        };
        {
            let store = CreditStore::open(dir.path(), "rules-a").unwrap();
            assert_eq!(store.load().unwrap(), Stored::default());
            store
                .append(std::slice::from_ref(&fact), 5, "ev-5")
                .await
                .unwrap();
        }
        {
            let store = CreditStore::open(dir.path(), "rules-a").unwrap();
            let stored = store.load().unwrap();
            assert_eq!(stored.position, 5);
            assert_eq!(stored.anchor.as_deref(), Some("ev-5"));
            assert_eq!(stored.facts, [fact]);
        }
        let store = CreditStore::open(dir.path(), "rules-b").unwrap();
        assert_eq!(store.load().unwrap(), Stored::default());
    }
}
