//! Offline audit bundles: what `hazchem audit export` writes and `hazchem audit verify --bundle` checks with
//! no server running.
//!
//! A bundle is a directory:
//!
//! | file | content |
//! | --- | --- |
//! | `manifest.json` | `{"format": "hazchem-audit-bundle/1", "origin", "treeSize", "records", "createdAt"}`; descriptive only, never trusted |
//! | `checkpoint.note` | the signed checkpoint the records are checked against |
//! | `ledger.pub` | the ledger's verifier key (`<name>+<key id>+<base64 key>`), for reference only: the verifier trusts the key it is *given* |
//! | `records.jsonl` | one JSON object per leaf, in leaf order: `{"index": 0, "sequence": 1, "record": "<base64 of the exact stored hazchem.v1.Record bytes>", "proof": ["<base64 hash>", ...]}`; `proof` (the inclusion proof against the checkpoint, deepest sibling first) is optional |
//! | `signing-keys.toml` | optional: the departments' keys that signed records in the bundle, in the key registry's format, for reference only: origin signatures are checked with the key registry the auditor names, and a record signed with a key the bundle carries but that registry lacks fails |
//! | `earlier.note` | optional: an earlier signed checkpoint the log must extend |
//! | `consistency.json` | optional: `{"firstSize": m, "secondSize": n, "hashes": ["<base64>", ...]}`, the consistency proof from `earlier.note` to `checkpoint.note` |
//!
//! Verification streams `records.jsonl` line by line, so a bundle of millions of records needs only
//! 32 bytes of memory a record (its leaf hash).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merkle::Hash;
use crate::note::{VerifierKey, unverified_checkpoint};
use crate::registry::KeyRegistry;
use crate::verify::{Problem, ProblemKind, Requirements, Verified, Verifier, VerifyFailure};

/// The `format` of `manifest.json`.
pub const BUNDLE_FORMAT: &str = "hazchem-audit-bundle/1";

/// File names inside a bundle.
pub const MANIFEST: &str = "manifest.json";
pub const CHECKPOINT: &str = "checkpoint.note";
pub const KEY: &str = "ledger.pub";
pub const RECORDS: &str = "records.jsonl";
pub const EARLIER: &str = "earlier.note";
pub const CONSISTENCY: &str = "consistency.json";
pub const ORIGIN_KEYS: &str = "signing-keys.toml";

/// One line of `records.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRecord {
    /// The leaf index (the stream sequence minus one).
    pub index: u64,
    /// The exact leaf bytes (an encoded `hazchem.v1.Record`).
    pub record: Vec<u8>,
    /// The inclusion proof against the bundle's checkpoint.
    pub proof: Option<Vec<Hash>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordLine {
    index: u64,
    #[serde(default)]
    sequence: u64,
    record: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proof: Option<Vec<String>>,
}

impl BundleRecord {
    /// The JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(&RecordLine {
            index: self.index,
            sequence: self.index + 1,
            record: BASE64.encode(&self.record),
            proof: self
                .proof
                .as_ref()
                .map(|p| p.iter().map(|h| BASE64.encode(h)).collect()),
        })
        .expect("a record line serialises")
    }

    /// Parses one JSON line; the error says what is wrong.
    pub fn from_line(line: &str) -> std::result::Result<Self, String> {
        let parsed: RecordLine =
            serde_json::from_str(line).map_err(|e| format!("not a record line: {e}"))?;
        let record = BASE64
            .decode(&parsed.record)
            .map_err(|e| format!("leaf {}: \"record\" is not base64: {e}", parsed.index))?;
        let proof = parsed
            .proof
            .map(|hashes| {
                hashes
                    .iter()
                    .map(|h| decode_hash(h))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| format!("leaf {}: proof: {e}", parsed.index))?;
        Ok(BundleRecord {
            index: parsed.index,
            record,
            proof,
        })
    }
}

fn decode_hash(text: &str) -> std::result::Result<Hash, String> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{text:?} is not base64 of 32 bytes"))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyFile {
    first_size: u64,
    second_size: u64,
    hashes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    format: String,
    origin: String,
    tree_size: u64,
    records: u64,
    created_at: String,
}

/// Writes a bundle directory, records first (streamed), the rest in [`BundleWriter::finish`].
#[derive(Debug)]
pub struct BundleWriter {
    dir: PathBuf,
    records: BufWriter<File>,
    count: u64,
}

impl BundleWriter {
    /// Creates `dir` (it must not exist, or be empty).
    pub fn create(dir: &Path) -> Result<Self> {
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::BundleDirNotEmpty {
                    path: dir.display().to_string(),
                });
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(RECORDS);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(BundleWriter {
            dir: dir.to_owned(),
            records: BufWriter::new(file),
            count: 0,
        })
    }

    /// Appends one record line.
    pub fn write_record(&mut self, record: &BundleRecord) -> Result<()> {
        let path = self.dir.join(RECORDS);
        writeln!(self.records, "{}", record.to_line()).map_err(|e| Error::io(&path, e))?;
        self.count += 1;
        Ok(())
    }

    /// Writes the departments' keys that signed the bundle's records (`signing-keys.toml`; for reference:
    /// a verifier trusts only the registry its auditor names).
    pub fn write_origin_keys(&mut self, keys: &KeyRegistry) -> Result<()> {
        self.write(ORIGIN_KEYS, &keys.to_toml_string())
    }

    /// Writes the checkpoint, the key, the optional earlier checkpoint with its consistency proof, and
    /// the manifest, whose `createdAt` is `created_at` (the caller's clock, normally now; descriptive
    /// only, like the rest of the manifest).
    pub fn finish(
        mut self,
        checkpoint_note: &str,
        key: Option<&VerifierKey>,
        earlier: Option<(&str, &[Hash])>,
        created_at: DateTime<Utc>,
    ) -> Result<PathBuf> {
        let path = self.dir.join(RECORDS);
        self.records.flush().map_err(|e| Error::io(&path, e))?;
        let checkpoint = unverified_checkpoint(checkpoint_note)?;
        self.write(CHECKPOINT, checkpoint_note)?;
        if let Some(key) = key {
            self.write(KEY, &format!("{}\n", key.to_vkey()))?;
        }
        if let Some((note, proof)) = earlier {
            let first = unverified_checkpoint(note)?;
            self.write(EARLIER, note)?;
            let file = ConsistencyFile {
                first_size: first.size,
                second_size: checkpoint.size,
                hashes: proof.iter().map(|h| BASE64.encode(h)).collect(),
            };
            self.write(
                CONSISTENCY,
                &serde_json::to_string_pretty(&file).expect("serialises"),
            )?;
        }
        let manifest = Manifest {
            format: BUNDLE_FORMAT.into(),
            origin: checkpoint.origin,
            tree_size: checkpoint.size,
            records: self.count,
            created_at: created_at.to_rfc3339(),
        };
        self.write(
            MANIFEST,
            &serde_json::to_string_pretty(&manifest).expect("serialises"),
        )?;
        Ok(self.dir)
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}

fn failure(kind: ProblemKind, message: String) -> VerifyFailure {
    VerifyFailure::only(Problem::new(kind, None, message))
}

/// Verifies a bundle directory trusting only `key`, with what `requirements` asks (witnesses' cosignatures
/// on the checkpoint, origin signatures checked with the auditor's key registry; the bundle's own
/// `signing-keys.toml` is only named in a failure, never trusted). `requirements.since` is an earlier
/// checkpoint the auditor saved: it takes the place of the bundle's own `earlier.note`, whose consistency
/// proof is then used only if it is for the same sizes.
pub fn verify_bundle(
    dir: &Path,
    key: VerifierKey,
    requirements: &Requirements,
) -> Result<Verified, VerifyFailure> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let note = read(CHECKPOINT).map_err(|e| {
        failure(
            ProblemKind::CheckpointSignature,
            format!("cannot read {}: {e}", dir.join(CHECKPOINT).display()),
        )
    })?;
    let mut requirements = requirements.clone();
    if requirements.since.is_none() {
        requirements.since = read(EARLIER).ok();
    }
    if let Some(check) = requirements.origin.take() {
        let offered = match read(ORIGIN_KEYS) {
            Ok(text) => KeyRegistry::from_toml_str(&text).map_err(|e| {
                failure(
                    ProblemKind::OriginSignature,
                    format!("{ORIGIN_KEYS} in the bundle is not a key registry: {e}"),
                )
            })?,
            Err(_) => KeyRegistry::new(),
        };
        requirements.origin = Some(check.offered(offered));
    }
    let mut verifier = Verifier::with_requirements(key, &note, &requirements)?;
    if verifier.earlier().is_some()
        && let Ok(text) = read(CONSISTENCY)
    {
        match serde_json::from_str::<ConsistencyFile>(&text) {
            Ok(file) => {
                let first = verifier.earlier().map(|e| e.size);
                if Some(file.first_size) == first && file.second_size == verifier.checkpoint().size
                {
                    match file
                        .hashes
                        .iter()
                        .map(|h| decode_hash(h))
                        .collect::<std::result::Result<Vec<_>, _>>()
                    {
                        Ok(proof) => verifier.consistency_proof(&proof),
                        Err(e) => {
                            verifier.malformed_consistency_proof(format!("{CONSISTENCY}: {e}"))
                        }
                    }
                }
            }
            Err(e) => verifier.malformed_consistency_proof(format!("{CONSISTENCY}: {e}")),
        }
    }
    let path = dir.join(RECORDS);
    let file = File::open(&path).map_err(|e| {
        failure(
            ProblemKind::Malformed,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                verifier.push_malformed(format!("{RECORDS} line {}: {e}", n + 1));
                break;
            }
        };
        // Every line is a record: the writer writes no blank lines, so a blank one takes a position too.
        match BundleRecord::from_line(&line) {
            Ok(record) => verifier.push(record.index, &record.record, record.proof.as_deref()),
            Err(e) => verifier.push_malformed(format!("{RECORDS} line {}: {e}", n + 1)),
        }
    }
    verifier.finish()
}
