//! Witnesses: C2SP `tlog-cosignature` v1 cosignatures (c2sp.org/tlog-cosignature) and a witness that
//! cosigns a checkpoint only if it is consistent with the last one it cosigned (c2sp.org/tlog-witness).
//!
//! ```text
//! hazchem.example/ledger
//! 3007
//! n4d4m4SB5Nx0fD7q1U3fT6CjJ3xYlI9nvUO8fQfYh3A=
//!
//! — hazchem.example/ledger 4Cz1Ql3x…base64(key id[4] ‖ Ed25519 signature[64])…
//! — hazchem.example/witness/police Xq2w…base64(key id[4] ‖ timestamp[8] ‖ Ed25519 signature[64])…
//! ```
//!
//! - A cosignature is a note signature line `— <witness name> base64(key id[4] ‖ timestamp[8] ‖
//!   signature[64])`; the timestamp is big-endian seconds since the Unix epoch.
//! - key id = `SHA-256(name ‖ "\n" ‖ 0x04 ‖ 32-byte public key)[..4]` (0x04: the cosignature/v1 type).
//! - The signed message is `cosignature/v1\ntime <timestamp, decimal>\n` followed by the checkpoint's note
//!   text (everything before the blank line that precedes the signature lines).
//! - A witness verifier key is written `<name>+<key id, 8 hex digits>+<base64(0x04 ‖ public key)>`.
//! - A [`Witness`] keeps, per log origin, the last checkpoint it cosigned (size and root), and answers
//!   C2SP tlog-witness `add-checkpoint` requests ([`AddCheckpoint`]: the old size the submitter believes
//!   the witness is at, a consistency proof from it, the checkpoint). It cosigns only if the log's key
//!   signed the checkpoint, the old size is the size it recorded, and the checkpoint is consistent with
//!   what it recorded (same root at the same size, else a consistency proof that holds); every refusal is
//!   a [`Refusal`] with the HTTP status the protocol gives it ([`Refusal::status`]). Its state is written
//!   to its file (JSON) before it answers, so a restarted witness keeps refusing forks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::key::PublicKey;
use crate::merkle::{self, Hash, ProofError};
use crate::note::{NoteError, VerifierKey, check_key_name, split_note};

/// The signature type byte of cosignature/v1 (Ed25519 over the timestamped message).
pub const COSIGNATURE_TYPE: u8 = 0x04;

/// The message a cosignature/v1 signs: `cosignature/v1\ntime <time>\n` and the checkpoint's note text.
pub fn cosigned_message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// The key id of a witness key: `SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[..4]`.
pub fn cosignature_key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIGNATURE_TYPE]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A witness's public key under its name, as an auditor trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    key: PublicKey,
}

impl WitnessKey {
    /// A witness key under `name`.
    pub fn new(name: &str, key: PublicKey) -> Result<Self, NoteError> {
        check_key_name(name)?;
        Ok(WitnessKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Parses `<name>+<8 hex digits key id>+<base64(0x04 ‖ 32-byte key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let parts: Vec<&str> = text.splitn(3, '+').collect();
        let [name, id_hex, encoded] = parts[..] else {
            return Err(NoteError::Key(format!(
                "witness key {text:?} is not <name>+<8 hex digits>+<base64(0x04 || key)>"
            )));
        };
        check_key_name(name)?;
        let id: [u8; 4] = hex::decode(id_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| NoteError::Key(format!("key id {id_hex:?} is not 8 hex digits")))?;
        let blob = BASE64
            .decode(encoded)
            .map_err(|_| NoteError::Key("the witness key is not base64".into()))?;
        let (&kind, raw) = blob
            .split_first()
            .ok_or_else(|| NoteError::Key("the witness key is empty".into()))?;
        if kind != COSIGNATURE_TYPE {
            return Err(NoteError::Key(format!(
                "signature type 0x{kind:02x} is not cosignature/v1 (0x04)"
            )));
        }
        let raw: &[u8; 32] = raw.try_into().map_err(|_| {
            NoteError::Key(format!("an Ed25519 key is 32 bytes, got {}", raw.len()))
        })?;
        let key = PublicKey::from_bytes(raw).map_err(|e| NoteError::Key(e.to_string()))?;
        if cosignature_key_id(name, &key) != id {
            return Err(NoteError::Key(format!(
                "key id {id_hex} does not match the witness key and name {name:?}"
            )));
        }
        Ok(WitnessKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Parses a witness key list: one key per line; blank lines and lines starting with `#` are skipped.
    /// A malformed line is refused naming its line number.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, NoteError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                Self::parse(line).map_err(|e| NoteError::Key(format!("line {}: {e}", i + 1)))?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Reads a witness key list file ([`WitnessKey::parse_list`]).
    pub fn load_list(path: &Path) -> crate::Result<Vec<Self>> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        Self::parse_list(&text).map_err(|source| crate::Error::KeyFile {
            path: path.display().to_string(),
            source,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The C2SP key id (type 0x04), as the cosignature lines carry it.
    pub fn key_id(&self) -> [u8; 4] {
        cosignature_key_id(&self.name, &self.key)
    }

    /// The `<name>+<hex id>+<base64(0x04 ‖ key)>` form.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![COSIGNATURE_TYPE];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            BASE64.encode(blob)
        )
    }
}

impl fmt::Display for WitnessKey {
    /// `<name>+<key id hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.name, hex::encode(self.key_id()))
    }
}

/// Makes cosignature/v1 signature lines with a witness's Ed25519 key. `Debug` shows only the public half.
pub struct Cosigner {
    name: String,
    key: SigningKey,
    public: PublicKey,
    id: [u8; 4],
}

impl Cosigner {
    /// A cosigner under the witness name `name`.
    pub fn new(name: &str, key: impl Into<SigningKey>) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = key.into();
        let public = PublicKey::from(&key);
        let id = cosignature_key_id(name, &public);
        Ok(Cosigner {
            name: name.to_owned(),
            key,
            public,
            id,
        })
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature line (ending in a newline) over a checkpoint's note text `body` at `time`
    /// (seconds since the Unix epoch): `— <name> base64(key id ‖ time ‖ signature)\n`.
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let signature = self
            .key
            .sign(cosigned_message(body, time).as_bytes())
            .to_bytes();
        let mut blob = Vec::with_capacity(4 + 8 + 64);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&signature);
        format!("\u{2014} {} {}\n", self.name, BASE64.encode(blob))
    }

    /// The matching witness key.
    pub fn witness_key(&self) -> WitnessKey {
        WitnessKey {
            name: self.name.clone(),
            key: self.public,
        }
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("public_key", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A good cosignature found on a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness, `<name>+<key id hex>`.
    pub witness: String,
    /// When the witness cosigned (seconds since the Unix epoch).
    pub time: u64,
}

/// The known witnesses that cosigned `note`, each at most once, in the order of `witnesses`. A
/// cosignature line by a known witness that does not verify (altered text, time or signature) is not
/// counted; lines by unknown keys are ignored. An error only if the note is not a signed note.
pub fn verify_cosignatures(
    note: &str,
    witnesses: &[WitnessKey],
) -> Result<Vec<Cosignature>, NoteError> {
    let (text, lines) = split_note(note)?;
    let mut good = Vec::new();
    for witness in witnesses {
        let id = witness.key_id();
        let found = lines.iter().find_map(|line| {
            if line.name != witness.name || line.id != id || line.signature.len() != 8 + 64 {
                return None;
            }
            let time = u64::from_be_bytes(line.signature[..8].try_into().ok()?);
            witness
                .key
                .verify(
                    cosigned_message(text, time).as_bytes(),
                    &line.signature[8..],
                )
                .ok()
                .map(|()| time)
        });
        if let Some(time) = found
            && !good
                .iter()
                .any(|c: &Cosignature| c.witness == witness.to_string())
        {
            good.push(Cosignature {
                witness: witness.to_string(),
                time,
            });
        }
    }
    Ok(good)
}

/// Fewer known witnesses cosigned a checkpoint than required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the checkpoint carries {found} good cosignature(s) of the {known} known witnesses, fewer than the {required} \
     required{}",
    if cosigned.is_empty() { String::new() } else { format!(" (cosigned by: {})", cosigned.join(", ")) }
)]
pub struct TooFewCosignatures {
    /// Good cosignatures by known witnesses.
    pub found: usize,
    /// How many were required.
    pub required: usize,
    /// How many witnesses are known.
    pub known: usize,
    /// Who cosigned, `<name>+<key id hex>`.
    pub cosigned: Vec<String>,
}

/// Requires good cosignatures by at least `required` of the known `witnesses` on `note`; returns them.
pub fn require_cosignatures(
    note: &str,
    witnesses: &[WitnessKey],
    required: usize,
) -> Result<Vec<Cosignature>, TooFewCosignatures> {
    let good = verify_cosignatures(note, witnesses).unwrap_or_default();
    if good.len() < required {
        return Err(TooFewCosignatures {
            found: good.len(),
            required,
            known: witnesses.len(),
            cosigned: good.into_iter().map(|c| c.witness).collect(),
        });
    }
    Ok(good)
}

/// Appends cosignature lines to a signed note (each `— … \n`).
pub fn add_cosignatures(note: &str, lines: &[String]) -> String {
    let mut out = note.to_owned();
    for line in lines {
        out.push_str(line);
    }
    out
}

/// The path of the tlog-witness `add-checkpoint` call, below the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// The `Content-Type` of a `409 Conflict` answer: the witness's recorded tree size, in decimal, and a
/// newline.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// At most this many consistency proof lines in a request (a proof between two trees of at most 2^63
/// leaves is never longer).
pub const MAX_PROOF_LINES: usize = 63;

/// A tlog-witness `add-checkpoint` request: `old <size>\n`, one base64 consistency proof hash per line,
/// an empty line, then the signed checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The tree size of the checkpoint the submitter believes the witness last cosigned (0: none).
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size (empty when `old` is 0).
    pub proof: Vec<Hash>,
    /// The signed checkpoint.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }

    /// Parses a request body; a malformed one is [`Refusal::Malformed`] (`400 Bad Request`).
    pub fn parse(body: &str) -> Result<Self, Refusal> {
        let malformed = |what: String| Refusal::Malformed(what);
        let (first, mut rest) = body
            .split_once('\n')
            .ok_or_else(|| malformed("the body has no old size line".into()))?;
        let digits = first.strip_prefix("old ").ok_or_else(|| {
            malformed(format!(
                "the first line is not `old <size>`: {:?}",
                clip(first)
            ))
        })?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(malformed(format!(
                "the old size {:?} is not a decimal without leading zeroes",
                clip(digits)
            )));
        }
        let old: u64 = digits
            .parse()
            .map_err(|_| malformed(format!("the old size {:?} is too large", clip(digits))))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or_else(|| {
                malformed("the proof lines are not followed by an empty line".into())
            })?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                )));
            }
            let hash: Hash = BASE64
                .decode(line)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    malformed(format!(
                        "consistency proof line {} is not base64 of 32 bytes",
                        proof.len() + 1
                    ))
                })?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: rest.to_owned(),
        })
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Why a witness refuses to cosign a checkpoint; [`Refusal::status`] is the tlog-witness HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is malformed: its body, or the checkpoint note in it (`400`).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The witness does not know the log of this origin (`404`).
    #[error("the witness knows no log of origin {origin:?}")]
    UnknownLog { origin: String },
    /// No signature on the checkpoint verifies with the log's key (`403`).
    #[error("the checkpoint does not verify with the log's key: {0}")]
    BadSignature(NoteError),
    /// The old size is larger than the checkpoint's (`400`).
    #[error("the old size {old} is larger than the checkpoint's size {size}")]
    OldTooLarge { old: u64, size: u64 },
    /// The old size is not the size the witness recorded (`409`, with the recorded size): the submitter
    /// asks again with a proof from it, unless that is larger than its checkpoint (a rollback).
    #[error(
        "the old size is {old}, but the witness last cosigned a checkpoint of size {recorded} of this log"
    )]
    Conflict { old: u64, recorded: u64 },
    /// Same size as the recorded checkpoint, another root: the log forked (`409`).
    #[error(
        "fork: the checkpoint of size {size} has root {root}, but the witness cosigned root {seen_root} at that size"
    )]
    Fork {
        size: u64,
        root: String,
        seen_root: String,
    },
    /// The consistency proof from the recorded checkpoint does not hold (`422`).
    #[error(
        "the checkpoint of size {size} is not consistent with the checkpoint of size {old} the witness cosigned: {reason}"
    )]
    Inconsistent {
        old: u64,
        size: u64,
        reason: ProofError,
    },
    /// The witness could not record its new state, so it does not cosign (`500`).
    #[error("the witness cannot record its state in {path}: {reason}")]
    State { path: String, reason: String },
}

impl Refusal {
    /// The HTTP status of the refusal in the tlog-witness protocol.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldTooLarge { .. } => 400,
            Refusal::BadSignature(_) => 403,
            Refusal::UnknownLog { .. } => 404,
            Refusal::Conflict { .. } | Refusal::Fork { .. } => 409,
            Refusal::Inconsistent { .. } => 422,
            Refusal::State { .. } => 500,
        }
    }

    /// For a `409 Conflict`: the tree size the witness recorded, its answer's body.
    pub fn recorded_size(&self) -> Option<u64> {
        match self {
            Refusal::Conflict { recorded, .. } => Some(*recorded),
            Refusal::Fork { size, .. } => Some(*size),
            _ => None,
        }
    }
}

/// What a witness saw last of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

#[derive(Serialize, Deserialize)]
struct SeenJson {
    size: u64,
    root: String,
}

/// A witness: cosigns a log's checkpoints only if they are consistent with the last one it cosigned.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<VerifierKey>,
    seen: BTreeMap<String, Seen>,
    state: Option<PathBuf>,
}

impl Witness {
    /// A witness of the logs `logs` (their keys, named by their origins), with its state in the JSON file
    /// `state` (`{"<origin>": {"size": N, "root": "<base64>"}}`), read if it exists; `None` keeps the
    /// state in memory only.
    pub fn new(
        cosigner: Cosigner,
        logs: Vec<VerifierKey>,
        state: Option<PathBuf>,
    ) -> crate::Result<Self> {
        let mut seen = BTreeMap::new();
        if let Some(path) = &state {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let parsed: BTreeMap<String, SeenJson> = serde_json::from_slice(&bytes)
                        .map_err(|e| crate::Error::key(path.display().to_string(), e))?;
                    for (origin, s) in parsed {
                        let root: Hash = BASE64
                            .decode(&s.root)
                            .ok()
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| {
                                crate::Error::key(
                                    path.display().to_string(),
                                    format!("the root of {origin:?} is not base64 of 32 bytes"),
                                )
                            })?;
                        seen.insert(origin, Seen { size: s.size, root });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(crate::Error::io(path, e)),
            }
        }
        Ok(Witness {
            cosigner,
            logs,
            seen,
            state,
        })
    }

    /// The witness's key, as auditors trust it.
    pub fn key(&self) -> WitnessKey {
        self.cosigner.witness_key()
    }

    /// The last checkpoint the witness cosigned of the log `origin`.
    pub fn last(&self, origin: &str) -> Option<Seen> {
        self.seen.get(origin).copied()
    }

    /// Answers an `add-checkpoint` request (the tlog-witness checks, in the protocol's order): if the
    /// checkpoint is signed by its log's key, `request.old` is the size this witness recorded for that
    /// log (0 for none), and the checkpoint is consistent with the recorded one, records it (durably, if
    /// the witness has a state file) and returns the cosignature line. `time` is the cosignature's
    /// timestamp (seconds since the Unix epoch; the caller's clock). The same checkpoint again is
    /// cosigned again. Checking and recording happen under `&mut self`, so two requests cannot race.
    pub fn add_checkpoint(
        &mut self,
        request: &AddCheckpoint,
        time: u64,
    ) -> Result<String, Refusal> {
        let note = request.note.as_str();
        let claimed = crate::note::unverified_checkpoint(note)
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let log = self
            .logs
            .iter()
            .find(|k| k.name() == claimed.origin)
            .ok_or_else(|| Refusal::UnknownLog {
                origin: claimed.origin.clone(),
            })?;
        let checkpoint = log.open_checkpoint(note).map_err(Refusal::BadSignature)?;
        let text = log.verify(note).map_err(Refusal::BadSignature)?;
        if request.old > checkpoint.size {
            return Err(Refusal::OldTooLarge {
                old: request.old,
                size: checkpoint.size,
            });
        }
        let recorded = self.seen.get(&checkpoint.origin).copied();
        let recorded_size = recorded.map_or(0, |s| s.size);
        if request.old != recorded_size {
            return Err(Refusal::Conflict {
                old: request.old,
                recorded: recorded_size,
            });
        }
        match recorded {
            Some(seen) if seen.size == checkpoint.size && seen.root != checkpoint.root => {
                return Err(Refusal::Fork {
                    size: checkpoint.size,
                    root: BASE64.encode(checkpoint.root),
                    seen_root: BASE64.encode(seen.root),
                });
            }
            Some(seen) => merkle::verify_consistency(
                seen.size,
                checkpoint.size,
                &request.proof,
                &seen.root,
                &checkpoint.root,
            ),
            None => merkle::verify_consistency(
                0,
                checkpoint.size,
                &request.proof,
                &merkle::EMPTY_ROOT,
                &checkpoint.root,
            ),
        }
        .map_err(|reason| Refusal::Inconsistent {
            old: recorded_size,
            size: checkpoint.size,
            reason,
        })?;
        let previous = self.seen.insert(
            checkpoint.origin.clone(),
            Seen {
                size: checkpoint.size,
                root: checkpoint.root,
            },
        );
        if let Err(refusal) = self.persist() {
            match previous {
                Some(p) => self.seen.insert(checkpoint.origin.clone(), p),
                None => self.seen.remove(&checkpoint.origin),
            };
            return Err(refusal);
        }
        Ok(self.cosigner.cosign(text, time))
    }

    fn persist(&self) -> Result<(), Refusal> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let failed = |reason: String| Refusal::State {
            path: path.display().to_string(),
            reason,
        };
        let json: BTreeMap<&str, SeenJson> = self
            .seen
            .iter()
            .map(|(origin, s)| {
                (
                    origin.as_str(),
                    SeenJson {
                        size: s.size,
                        root: BASE64.encode(s.root),
                    },
                )
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&json).map_err(|e| failed(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent()
                && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                })
            {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{Checkpoint, DEFAULT_ORIGIN, NoteSigner};

    fn fixed_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn body() -> String {
        Checkpoint {
            origin: DEFAULT_ORIGIN.into(),
            size: 1045,
            root: [7; 32],
        }
        .body()
    }

    fn note() -> String {
        NoteSigner::new(DEFAULT_ORIGIN, fixed_key(1))
            .unwrap()
            .sign(&body())
    }

    #[test]
    fn a_cosignature_round_trips() {
        let w = Cosigner::new("witness.example/w1", fixed_key(2)).unwrap();
        let line = w.cosign(&body(), 1_700_000_000);
        assert!(line.starts_with("\u{2014} witness.example/w1 "), "{line}");
        let blob = BASE64
            .decode(line.trim_end().rsplit_once(' ').unwrap().1)
            .unwrap();
        assert_eq!(blob.len(), 4 + 8 + 64);
        assert_eq!(blob[..4], w.witness_key().key_id());
        assert_eq!(blob[4..12], 1_700_000_000u64.to_be_bytes());
        // The signature is over the cosignature/v1 message.
        let message = format!("cosignature/v1\ntime 1700000000\n{}", body());
        w.witness_key()
            .public_key()
            .verify(message.as_bytes(), &blob[12..])
            .unwrap();
        let cosigned = add_cosignatures(&note(), &[line]);
        let good = verify_cosignatures(&cosigned, &[w.witness_key()]).unwrap();
        assert_eq!(
            good,
            vec![Cosignature {
                witness: w.witness_key().to_string(),
                time: 1_700_000_000
            }]
        );
        // The log's signature still verifies; the cosignature is ignored by it.
        NoteSigner::new(DEFAULT_ORIGIN, fixed_key(1))
            .unwrap()
            .verifier()
            .open_checkpoint(&cosigned)
            .unwrap();
    }

    #[test]
    fn the_wrong_key_altered_body_or_time_do_not_count() {
        let w = Cosigner::new("witness.example/w1", fixed_key(2)).unwrap();
        let line = w.cosign(&body(), 1_700_000_000);
        let cosigned = add_cosignatures(&note(), std::slice::from_ref(&line));
        // Another key under the same name: another key id, not counted.
        let other = Cosigner::new("witness.example/w1", fixed_key(3)).unwrap();
        assert!(
            verify_cosignatures(&cosigned, &[other.witness_key()])
                .unwrap()
                .is_empty()
        );
        // Same key claimed under the other key's id: does not verify.
        let impostor = WitnessKey {
            name: "witness.example/w1".into(),
            key: *other.witness_key().public_key(),
        };
        assert!(
            verify_cosignatures(&cosigned, &[impostor])
                .unwrap()
                .is_empty()
        );
        // Altered body.
        let altered = cosigned.replacen("1045", "1046", 1);
        assert!(
            verify_cosignatures(&altered, &[w.witness_key()])
                .unwrap()
                .is_empty()
        );
        // Altered time.
        let (head, encoded) = line.trim_end().rsplit_once(' ').unwrap();
        let mut blob = BASE64.decode(encoded).unwrap();
        blob[11] ^= 1;
        let retimed = add_cosignatures(&note(), &[format!("{head} {}\n", BASE64.encode(blob))]);
        assert!(
            verify_cosignatures(&retimed, &[w.witness_key()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn key_id_and_vkey_follow_the_spec() {
        let w = Cosigner::new("witness.example/w1", fixed_key(2)).unwrap();
        let key = w.witness_key();
        let mut input = b"witness.example/w1\n\x04".to_vec();
        input.extend_from_slice(key.public_key().as_bytes());
        assert_eq!(key.key_id(), Sha256::digest(&input)[..4]);
        let vkey = key.to_vkey();
        assert!(vkey.starts_with(&format!(
            "witness.example/w1+{}+",
            hex::encode(key.key_id())
        )));
        assert_eq!(WitnessKey::parse(&vkey).unwrap(), key);
        // An Ed25519 note key (type 0x01) is not a witness key.
        let note_key = NoteSigner::new("witness.example/w1", fixed_key(2))
            .unwrap()
            .verifier()
            .to_vkey();
        assert!(WitnessKey::parse(&note_key).is_err());
        let list = format!("# witnesses\n\n{vkey}\n");
        assert_eq!(WitnessKey::parse_list(&list).unwrap(), vec![key]);
        let err = WitnessKey::parse_list("# x\nnonsense\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
