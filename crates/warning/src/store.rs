//! The sled store: what [`Derived`] holds, and the stream position it was derived up to, written
//! together in one atomic batch per applied batch of messages, then flushed.
//!
//! | key | value (JSON unless said) |
//! | --- | --- |
//! | `w/<warning id>` | a warning |
//! | `g/<rule>\|<uscc>\|<sensor>` | a gas rule's open warning for a sensor |
//! | `s/<rule>\|<uscc>` | an alarm-storm rule's state for a site |
//! | `p/<uscc>\|<cas>` | highly toxic purchase permits of a buyer for a chemical |
//! | `l/<uscc>` | road transport licences of a holder |
//! | `o/<key>` | warnings a condition holds open |
//! | `m/applied` | the last applied sequence, 8 bytes big-endian, then the subject of that message |
//! | `m/rules` | the fingerprint of the rules (and catalogue) the store was derived under |

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::state::{Derived, Key};

const APPLIED: &[u8] = b"m/applied";
const RULES: &[u8] = b"m/rules";

#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
}

fn key(k: &Key) -> Vec<u8> {
    match k {
        Key::Warning(id) => format!("w/{id}"),
        Key::Gas(k) => format!("g/{k}"),
        Key::Storm(k) => format!("s/{k}"),
        Key::Permits(k) => format!("p/{k}"),
        Key::Licences(k) => format!("l/{k}"),
        Key::Open(k) => format!("o/{k}"),
    }
    .into_bytes()
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt(format!("cannot encode: {e}")))
}

impl Store {
    /// Opens (creating) the store in `path`; a store derived under other rules is emptied, to be
    /// rebuilt from the stream.
    pub fn open(path: &Path, fingerprint: &str) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let db = hazchem_bus::open_sled(path)?;
        let store = Store { db };
        match store.db.get(RULES)? {
            Some(v) if v.as_ref() == fingerprint.as_bytes() => {}
            None if store.db.get(APPLIED)?.is_none() => {
                store.db.insert(RULES, fingerprint.as_bytes())?;
            }
            _ => {
                tracing::warn!(store = %path.display(), "the warning store was derived under other rules; rebuilding it from the stream");
                store.clear()?;
                store.db.insert(RULES, fingerprint.as_bytes())?;
                store.db.flush()?;
            }
        }
        Ok(store)
    }

    fn all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (k, v) = item?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let value = serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))?;
                Ok((name, value))
            })
            .collect()
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Derived> {
        let mut d = Derived {
            warnings: self.all("w/")?.into_iter().collect(),
            gas: self.all("g/")?.into_iter().collect(),
            storms: self.all("s/")?.into_iter().collect(),
            permits: self.all("p/")?.into_iter().collect(),
            licences: self.all("l/")?.into_iter().collect(),
            open: self.all("o/")?.into_iter().collect(),
            ..Derived::default()
        };
        if let Some(v) = self.db.get(APPLIED)? {
            if v.len() < 8 {
                return Err(Error::Corrupt("m/applied is shorter than 8 bytes".into()));
            }
            d.applied = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            d.anchor = String::from_utf8_lossy(&v[8..]).into_owned();
        }
        Ok(d)
    }

    /// Writes the `dirty` keys of `d` and its position, atomically, and flushes.
    pub async fn save(&self, d: &Derived, dirty: &BTreeSet<Key>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in dirty {
            let value = match k {
                Key::Warning(id) => d.warnings.get(id).map(json).transpose()?,
                Key::Gas(x) => d.gas.get(x).map(json).transpose()?,
                Key::Storm(x) => d.storms.get(x).map(json).transpose()?,
                Key::Permits(x) => d.permits.get(x).map(json).transpose()?,
                Key::Licences(x) => d.licences.get(x).map(json).transpose()?,
                Key::Open(x) => d.open.get(x).map(json).transpose()?,
            };
            match value {
                Some(v) => batch.insert(key(k), v),
                None => batch.remove(key(k)),
            }
        }
        let mut applied = d.applied.to_be_bytes().to_vec();
        applied.extend_from_slice(d.anchor.as_bytes());
        batch.insert(APPLIED, applied);
        self.db.apply_batch(batch)?;
        hazchem_bus::flush_sled(&self.db).await?;
        Ok(())
    }

    /// Forgets everything but the rules fingerprint (to rebuild from the stream).
    pub fn clear(&self) -> Result<()> {
        let rules = self.db.get(RULES)?;
        self.db.clear()?;
        if let Some(r) = rules {
            self.db.insert(RULES, r)?;
        }
        self.db.flush()?;
        Ok(())
    }
}
