//! The sled store: the projection and the stream position it was derived up to, written together in one
//! atomic batch per applied batch of messages and flushed before the position is acted on.
//!
//! | key | value (JSON unless said) |
//! | --- | --- |
//! | `t/<task id>` | the task |
//! | `c/<department>/<command id>` | the command record |
//! | `r/<uscc>` | the enterprise's risk facts |
//! | `l/<listing id>` | a credit listing |
//! | `p/<decision number>` | a penalty's task |
//! | `m/applied` | the last applied sequence, 8 bytes big-endian |
//! | `m/last_event` | the last applied task event: `[sequence, event id]` |
//! | `m/version` | the layout version, `1` |

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::projection::{CommandRecord, EnterpriseRisk, Key, Listing, PenaltyRef, Projection};
use crate::task::Task;

const VERSION: &[u8] = b"1";
const APPLIED: &[u8] = b"m/applied";
const LAST_EVENT: &[u8] = b"m/last_event";
const VERSION_KEY: &[u8] = b"m/version";

/// The enforcement service's local store.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
}

fn key(k: &Key) -> Vec<u8> {
    match k {
        Key::Task(id) => format!("t/{id}"),
        Key::Command(d, id) => format!("c/{}/{id}", d.code()),
        Key::Risk(uscc) => format!("r/{uscc}"),
        Key::Listing(id) => format!("l/{id}"),
        Key::Penalty(number) => format!("p/{number}"),
    }
    .into_bytes()
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt(format!("cannot encode: {e}")))
}

impl Store {
    /// Opens (creating) the store in `path`.
    pub fn open(path: &Path) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let db = hazchem_bus::open_sled(path)?;
        match db.get(VERSION_KEY)? {
            None => {
                db.insert(VERSION_KEY, VERSION)?;
            }
            Some(v) if v.as_ref() == VERSION => {}
            Some(v) => {
                // Derived state in another layout: start again from the stream.
                tracing::warn!(
                    store = %path.display(),
                    version = %String::from_utf8_lossy(&v),
                    "the enforcement store has another layout version; rebuilding it from the stream"
                );
                let store = Store { db };
                store.clear()?;
                return Ok(store);
            }
        }
        Ok(Store { db })
    }

    fn all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (k, v) = item?;
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))
            })
            .collect()
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Projection> {
        let mut p = Projection::default();
        for task in self.all::<Task>("t/")? {
            p.tasks.insert(task.id.clone(), task);
        }
        for c in self.all::<CommandRecord>("c/")? {
            p.commands.insert((c.department, c.command_id.clone()), c);
        }
        for r in self.all::<EnterpriseRisk>("r/")? {
            p.risk.insert(r.uscc, r.facts);
        }
        for l in self.all::<Listing>("l/")? {
            p.listings.insert(l.listing_id.clone(), l);
        }
        for pen in self.all::<PenaltyRef>("p/")? {
            p.penalties.insert(pen.decision_number.clone(), pen);
        }
        p.applied = match self.db.get(APPLIED)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| Error::Corrupt("m/applied is not 8 bytes".into()))?,
            ),
            None => 0,
        };
        p.last_event = match self.db.get(LAST_EVENT)? {
            Some(v) => Some(
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt(format!("m/last_event: {e}")))?,
            ),
            None => None,
        };
        Ok(p)
    }

    /// Writes the `dirty` keys of `p` and its position, atomically (not yet flushed).
    pub fn save(&self, p: &Projection, dirty: &BTreeSet<Key>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in dirty {
            let value = match k {
                Key::Task(id) => p.tasks.get(id).map(json).transpose()?,
                Key::Command(d, id) => p.commands.get(&(*d, id.clone())).map(json).transpose()?,
                Key::Risk(uscc) => p
                    .risk
                    .get(uscc)
                    .map(|facts| {
                        json(&EnterpriseRisk {
                            uscc: uscc.clone(),
                            facts: facts.clone(),
                        })
                    })
                    .transpose()?,
                Key::Listing(id) => p.listings.get(id).map(json).transpose()?,
                Key::Penalty(n) => p.penalties.get(n).map(json).transpose()?,
            };
            match value {
                Some(v) => batch.insert(key(k), v),
                None => batch.remove(key(k)),
            }
        }
        batch.insert(APPLIED, &p.applied.to_be_bytes());
        if let Some(last) = &p.last_event {
            batch.insert(LAST_EVENT, json(last)?);
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Waits until everything written is on disk.
    pub async fn flush(&self) -> Result<()> {
        hazchem_bus::flush_sled(&self.db).await?;
        Ok(())
    }

    /// Forgets everything (to rebuild from the stream).
    pub fn clear(&self) -> Result<()> {
        self.db.clear()?;
        self.db.insert(VERSION_KEY, VERSION)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_loads_empty_and_a_saved_position_survives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Projection::default());
        let p = Projection {
            applied: 42,
            last_event: Some((40, "cmd-x".into())),
            ..Projection::default()
        };
        store.save(&p, &BTreeSet::new()).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), p);
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), Projection::default());
    }
}
