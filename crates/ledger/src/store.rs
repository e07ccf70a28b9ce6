//! The ledger's local store (sled): derived state, rebuilt from the stream when lost, and checked against
//! the ledger's own last checkpoint before it is trusted.
//!
//! One sled tree, keys prefixed by kind, so that every append is one atomic [`sled::Batch`]:
//!
//! | key | value |
//! | --- | --- |
//! | `m/size`, `m/next_sequence`, `m/foreign` | big-endian u64: leaves, the next stream sequence to read (= size + 1), leaves that are not this ledger's own checkpoints |
//! | `n` · level (1 byte) · index (8 bytes BE) | the 32-byte hash of the perfect subtree (level, index); level 0 holds the leaf hashes |
//! | `l` · index (8 bytes BE) | the leaf bytes: the exact stored `hazchem.v1.Record` |
//! | `i` · event id · `.` · publisher | the leaf index (8 bytes BE): event ids are scoped by publisher |
//! | `m/layout` | [`LAYOUT`]: a store of another layout is emptied at open and rebuilt from the stream |
//! | `c` · tree size (8 bytes BE) | a checkpoint the ledger signed or met in the stream ([`StoredCheckpoint`], JSON) |
//!
//! A leaf, the hashes of the perfect subtrees it completes, its id entry and the new cursor are written in
//! one batch, so a crash leaves either all of them or none.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merkle::{self, Frontier, Hash, NodeSource};

/// Perfect subtrees of this level and above (one hash per 32 leaves and fewer) are also kept in memory,
/// loaded at open and extended on append, so that a proof costs about this many store reads.
pub const CACHED_LEVEL: u8 = 5;

const META_SIZE: &[u8] = b"m/size";
const META_NEXT_SEQUENCE: &[u8] = b"m/next_sequence";
const META_FOREIGN: &[u8] = b"m/foreign";

/// The key of node (level, index).
pub fn node_key(level: u8, index: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = b'n';
    key[1] = level;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The key of leaf `index`'s bytes.
pub fn leaf_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'l';
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The layout this code writes, under `m/layout`.
pub const LAYOUT: &[u8] = b"2";
const META_LAYOUT: &[u8] = b"m/layout";

/// `i` · id · `.`: the prefix of every publisher's entry for an id (ids and publishers have no dot).
fn id_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + id.len());
    key.push(b'i');
    key.extend_from_slice(id.as_bytes());
    key.push(b'.');
    key
}

fn id_key(publisher: &str, id: &str) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.extend_from_slice(publisher.as_bytes());
    key
}

fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'c';
    key[1..].copy_from_slice(&size.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8], what: &str) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{what} is {} bytes, not 8", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

fn hash_of(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{} is {} bytes, not 32", what(), bytes.len())))
}

/// A checkpoint as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// The signed note.
    pub note: String,
    /// When it was issued (the `time` of its `checkpoint_published` event).
    pub issued_at: chrono::DateTime<chrono::Utc>,
    /// Whether its `checkpoint_published` event is known to be on the stream.
    pub published: bool,
    /// The number of leaves that were not the ledger's own checkpoints when it was issued.
    pub foreign: u64,
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
    }
}

/// One message to append.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// Its stream sequence (the leaf index plus one).
    pub sequence: u64,
    /// Its publisher (the subject's publisher token).
    pub publisher: &'a str,
    /// Its event id.
    pub id: &'a str,
    /// The leaf bytes.
    pub record: &'a [u8],
    /// False for this ledger's own checkpoint events.
    pub foreign: bool,
    /// A checkpoint met in the stream, stored with the leaf.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// What the store holds, read at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreState {
    /// Leaves.
    pub size: u64,
    /// Leaves that are not this ledger's own checkpoints.
    pub foreign: u64,
}

/// The sled store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LedgerStore {
    db: sled::Db,
    dir: PathBuf,
    /// `upper[level - CACHED_LEVEL][index]`.
    upper: Arc<RwLock<Vec<Vec<Hash>>>>,
}

impl LedgerStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let db = hazchem_bus::open_sled(dir)?;
        if db.get(META_LAYOUT)?.as_deref() != Some(LAYOUT) {
            if !db.is_empty() {
                tracing::warn!(
                    dir = %dir.display(),
                    "the ledger store is of an older layout: emptied, to be rebuilt from the stream"
                );
                db.clear()?;
            }
            db.insert(META_LAYOUT, LAYOUT)?;
            db.flush()?;
        }
        let mut upper = Vec::new();
        for level in CACHED_LEVEL..64 {
            let mut hashes = Vec::new();
            for item in db.scan_prefix([b'n', level]) {
                let (key, value) = item?;
                // Up to the first hole; anything after it is read from sled (and the checks report it).
                if be_u64(&key[2..], "node key")? != hashes.len() as u64 {
                    break;
                }
                hashes.push(hash_of(&value, || format!("node ({level}, ..)"))?);
            }
            if hashes.is_empty() {
                break;
            }
            upper.push(hashes);
        }
        Ok(LedgerStore {
            db,
            dir: dir.to_owned(),
            upper: Arc::new(RwLock::new(upper)),
        })
    }

    /// The sled database itself, for repair tools and tamper tests (keys: [`leaf_key`], [`node_key`]).
    /// Hashes changed here are seen by a store opened afterwards.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta(&self, key: &[u8]) -> Result<u64> {
        match self.db.get(key)? {
            Some(v) => be_u64(&v, &String::from_utf8_lossy(key)),
            None => Ok(0),
        }
    }

    /// The size and the cursor, checked against each other.
    pub fn state(&self) -> Result<StoreState> {
        let size = self.meta(META_SIZE)?;
        let next = self.meta(META_NEXT_SEQUENCE)?;
        if next != 0 && next != size + 1 {
            return Err(Error::Corrupt(format!(
                "the cursor (next sequence {next}) does not follow the tree size {size}"
            )));
        }
        Ok(StoreState {
            size,
            foreign: self.meta(META_FOREIGN)?,
        })
    }

    /// Appends `items` (consecutive sequences starting at `frontier.size() + 1`) in one atomic batch,
    /// advancing `frontier` and `state`. Not yet durable: call [`LedgerStore::flush`].
    pub fn append(
        &self,
        frontier: &mut Frontier,
        state: &mut StoreState,
        items: &[Append<'_>],
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut upper = Vec::new();
        for item in items {
            let index = frontier.size();
            debug_assert_eq!(item.sequence, index + 1);
            let leaf = merkle::leaf_hash(item.record);
            frontier.push_with(leaf, |level, i, hash| {
                batch.insert(&node_key(level, i)[..], &hash[..]);
                if level >= CACHED_LEVEL {
                    upper.push((level, i, *hash));
                }
            });
            batch.insert(&leaf_key(index)[..], item.record);
            batch.insert(id_key(item.publisher, item.id), &index.to_be_bytes()[..]);
            if let Some(checkpoint) = &item.checkpoint {
                batch.insert(
                    &checkpoint_key(checkpoint.size)[..],
                    serde_json::to_vec(checkpoint).expect("a checkpoint serialises"),
                );
            }
            if item.foreign {
                state.foreign += 1;
            }
        }
        state.size = frontier.size();
        batch.insert(META_SIZE, &state.size.to_be_bytes()[..]);
        batch.insert(META_NEXT_SEQUENCE, &(state.size + 1).to_be_bytes()[..]);
        batch.insert(META_FOREIGN, &state.foreign.to_be_bytes()[..]);
        self.db.apply_batch(batch)?;
        if !upper.is_empty() {
            let mut cache = self.upper.write().expect("not poisoned");
            for (level, index, hash) in upper {
                let at = usize::from(level - CACHED_LEVEL);
                if cache.len() == at {
                    cache.push(Vec::new());
                }
                if let Some(hashes) = cache.get_mut(at)
                    && hashes.len() as u64 == index
                {
                    hashes.push(hash);
                }
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<()> {
        hazchem_bus::flush_sled(&self.db).await?;
        Ok(())
    }

    /// The leaf bytes at `index`.
    pub fn leaf(&self, index: u64) -> Result<Option<sled::IVec>> {
        Ok(self.db.get(leaf_key(index))?)
    }

    /// The leaves in `[from, to)`, in order, with their indices.
    pub fn leaves(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec)>> + use<> {
        self.db.range(leaf_key(from)..leaf_key(to)).map(|item| {
            let (key, value) = item?;
            Ok((be_u64(&key[1..], "leaf key")?, value))
        })
    }

    /// The leaf index of the event `publisher` published with id `id`.
    pub fn index_of(&self, publisher: &str, id: &str) -> Result<Option<u64>> {
        self.db
            .get(id_key(publisher, id))?
            .map(|v| be_u64(&v, "event id entry"))
            .transpose()
    }

    /// Every publisher's leaf with event id `id`: (publisher, leaf index), by publisher.
    pub fn indexes_of(&self, id: &str) -> Result<Vec<(String, u64)>> {
        let prefix = id_prefix(id);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let publisher = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((publisher, be_u64(&value, "event id entry")?))
            })
            .collect()
    }

    /// Stores (or replaces) a checkpoint. Not yet durable.
    pub fn put_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<()> {
        self.db.insert(
            checkpoint_key(checkpoint.size),
            serde_json::to_vec(checkpoint).expect("a checkpoint serialises"),
        )?;
        Ok(())
    }

    fn decode_checkpoint(value: &[u8]) -> Result<StoredCheckpoint> {
        serde_json::from_slice(value)
            .map_err(|e| Error::Corrupt(format!("a stored checkpoint: {e}")))
    }

    /// The checkpoint of `size`, if the ledger has one.
    pub fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>> {
        self.db
            .get(checkpoint_key(size))?
            .map(|v| Self::decode_checkpoint(&v))
            .transpose()
    }

    /// The checkpoint of the largest size.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        self.db
            .scan_prefix(b"c")
            .next_back()
            .transpose()?
            .map(|(_, v)| Self::decode_checkpoint(&v))
            .transpose()
    }

    /// Checkpoints whose event is not known to be on the stream yet, oldest first.
    pub fn unpublished_checkpoints(&self) -> Result<Vec<StoredCheckpoint>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"c") {
            let (_, v) = item?;
            let checkpoint = Self::decode_checkpoint(&v)?;
            if !checkpoint.published {
                out.push(checkpoint);
            }
        }
        Ok(out)
    }

    /// Checks every stored hash of a tree of `size` leaves: each leaf's bytes against its leaf hash, each
    /// interior node against its children, and that nothing is missing or extra. `O(size)`; the error names
    /// the first disagreement.
    pub fn deep_check(&self, size: u64) -> Result<()> {
        let disagree = |what: String| Error::StoreDisagrees { size, what };
        // Leaves against level 0.
        let mut leaves = self.db.scan_prefix(b"l");
        let mut level0 = self.db.scan_prefix([b'n', 0]);
        for index in 0..size {
            let (key, bytes) = leaves
                .next()
                .transpose()?
                .ok_or_else(|| disagree(format!("leaf {index} is missing")))?;
            let found = be_u64(&key[1..], "leaf key")?;
            if found != index {
                return Err(disagree(format!(
                    "leaf {index} is missing (the next stored leaf is {found})"
                )));
            }
            let (_, hash) = level0
                .next()
                .transpose()?
                .ok_or_else(|| disagree(format!("the hash of leaf {index} is missing")))?;
            let hash = hash_of(&hash, || format!("the hash of leaf {index}"))?;
            if merkle::leaf_hash(&bytes) != hash {
                return Err(disagree(format!(
                    "leaf {index}: the stored record does not hash to the stored leaf hash (the record was altered)"
                )));
            }
        }
        if let Some((key, _)) = leaves.next().transpose()? {
            return Err(disagree(format!(
                "leaf {} is stored beyond the tree size",
                be_u64(&key[1..], "leaf key")?
            )));
        }
        // Every interior level against the one below it.
        let mut level = 1u8;
        while level < 64 && size >> level > 0 {
            let mut children = self.db.scan_prefix([b'n', level - 1]);
            let mut parents = self.db.scan_prefix([b'n', level]);
            for index in 0..size >> level {
                let mut child = || -> Result<Hash> {
                    let (_, v) = children.next().transpose()?.ok_or_else(|| {
                        disagree(format!(
                            "a node at level {} below ({level}, {index}) is missing",
                            level - 1
                        ))
                    })?;
                    hash_of(&v, || format!("node ({}, ..)", level - 1))
                };
                let (left, right) = (child()?, child()?);
                let (key, v) = parents.next().transpose()?.ok_or_else(|| {
                    disagree(format!("node (level {level}, index {index}) is missing"))
                })?;
                if key[..] != node_key(level, index)[..] {
                    return Err(disagree(format!(
                        "node (level {level}, index {index}) is missing"
                    )));
                }
                if hash_of(&v, || format!("node ({level}, {index})"))?
                    != merkle::node_hash(&left, &right)
                {
                    return Err(disagree(format!(
                        "node (level {level}, index {index}) is not the hash of its children (covering leaves \
                         {} to {})",
                        index << level,
                        ((index + 1) << level) - 1
                    )));
                }
            }
            level += 1;
        }
        Ok(())
    }
}

impl NodeSource for LedgerStore {
    type Error = Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        if level >= CACHED_LEVEL {
            let cache = self.upper.read().expect("not poisoned");
            if let Some(hash) = cache
                .get(usize::from(level - CACHED_LEVEL))
                .and_then(|hashes| hashes.get(usize::try_from(index).ok()?))
            {
                return Ok(*hash);
            }
        }
        let value = self
            .db
            .get(node_key(level, index))?
            .ok_or(Error::MissingNode { level, index })?;
        hash_of(&value, || format!("node ({level}, {index})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append_n(
        store: &LedgerStore,
        frontier: &mut Frontier,
        state: &mut StoreState,
        from: u64,
        n: u64,
    ) {
        let records: Vec<(String, Vec<u8>)> = (from..from + n)
            .map(|i| (format!("ev-{i}"), format!("record {i}").into_bytes()))
            .collect();
        let items: Vec<Append<'_>> = records
            .iter()
            .enumerate()
            .map(|(k, (id, record))| Append {
                sequence: from + k as u64 + 1,
                publisher: "psb",
                id,
                record,
                foreign: true,
                checkpoint: None,
            })
            .collect();
        store.append(frontier, state, &items).unwrap();
    }

    #[test]
    fn the_store_answers_like_a_memory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::open(dir.path()).unwrap();
        let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
        append_n(&store, &mut frontier, &mut state, 0, 7);
        append_n(&store, &mut frontier, &mut state, 7, 30);
        let memory = crate::merkle::MemoryTree::from_leaf_hashes(
            (0..37u64).map(|i| merkle::leaf_hash(format!("record {i}").as_bytes())),
        );
        assert_eq!(
            store.state().unwrap(),
            StoreState {
                size: 37,
                foreign: 37
            }
        );
        for n in 0..=37 {
            assert_eq!(
                merkle::root(&store, n).unwrap(),
                merkle::root(&memory, n).unwrap()
            );
        }
        assert_eq!(frontier.root(), memory.root());
        assert_eq!(Frontier::from_source(&store, 37).unwrap(), frontier);
        assert_eq!(store.index_of("psb", "ev-12").unwrap(), Some(12));
        assert_eq!(store.index_of("fire", "ev-12").unwrap(), None);
        assert_eq!(
            store.indexes_of("ev-12").unwrap(),
            vec![("psb".to_owned(), 12)]
        );
        // A prefix of another id is not that id.
        assert_eq!(
            store.indexes_of("ev-1").unwrap(),
            vec![("psb".to_owned(), 1)]
        );
        assert_eq!(&store.leaf(12).unwrap().unwrap()[..], b"record 12");
        let leaves: Vec<u64> = store.leaves(5, 9).map(|r| r.unwrap().0).collect();
        assert_eq!(leaves, vec![5, 6, 7, 8]);
        store.deep_check(37).unwrap();
    }

    #[test]
    fn the_upper_levels_in_memory_agree_with_sled_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let memory = crate::merkle::MemoryTree::from_leaf_hashes(
            (0..300u64).map(|i| merkle::leaf_hash(format!("record {i}").as_bytes())),
        );
        {
            let store = LedgerStore::open(dir.path()).unwrap();
            let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
            append_n(&store, &mut frontier, &mut state, 0, 130);
            append_n(&store, &mut frontier, &mut state, 130, 40);
            for n in [1, 31, 32, 33, 64, 128, 170] {
                assert_eq!(
                    merkle::root(&store, n).unwrap(),
                    merkle::root(&memory, n).unwrap()
                );
            }
        }
        let store = LedgerStore::open(dir.path()).unwrap();
        let mut state = store.state().unwrap();
        let mut frontier = Frontier::from_source(&store, state.size).unwrap();
        append_n(&store, &mut frontier, &mut state, 170, 130);
        for n in 1..=300 {
            assert_eq!(
                merkle::root(&store, n).unwrap(),
                merkle::root(&memory, n).unwrap(),
                "{n}"
            );
        }
        for (level, index) in [(5u8, 0u64), (5, 8), (6, 3), (8, 0)] {
            let from_sled = hash_of(
                &store.db.get(node_key(level, index)).unwrap().unwrap(),
                String::new,
            )
            .unwrap();
            assert_eq!(store.node(level, index).unwrap(), from_sled);
        }
        store.deep_check(300).unwrap();
    }

    #[test]
    fn deep_check_names_what_was_altered() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::open(dir.path()).unwrap();
        let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
        append_n(&store, &mut frontier, &mut state, 0, 20);
        store.db.insert(leaf_key(11), &b"record 11!"[..]).unwrap();
        let err = store.deep_check(20).unwrap_err().to_string();
        assert!(
            err.contains("leaf 11: the stored record does not hash"),
            "{err}"
        );
        store.db.insert(leaf_key(11), &b"record 11"[..]).unwrap();
        store.db.insert(node_key(2, 1), &[0u8; 32][..]).unwrap();
        let err = store.deep_check(20).unwrap_err().to_string();
        assert!(
            err.contains("node (level 2, index 1) is not the hash"),
            "{err}"
        );
    }
}
