//! Checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), signed with Ed25519.
//!
//! ```text
//! hazchem.example/ledger          ← origin
//! 1045                            ← tree size, decimal
//! 3Rx9...base64 root hash...=     ← RFC 6962 root hash, standard base64
//!                                 ← blank line
//! — hazchem.example/ledger AbCd...base64(key id[4] || signature[64])...
//! ```
//!
//! - The signed text is the body up to and including its last newline; the signature lines follow the last
//!   blank line. Each is an em dash, a space, the key name, a space and base64 of the 4-byte key id followed
//!   by the 64-byte Ed25519 signature of the text.
//! - key id = `SHA-256(key name || "\n" || 0x01 || 32-byte public key)[..4]`.
//! - A verifier key is written `<name>+<key id, 8 hex digits>+<base64(0x01 || public key)>` (the
//!   golang.org/x/mod/sumdb/note form). The key name is the log's origin: a checkpoint is trusted only if
//!   its origin line is the key's name and it carries a good signature under that name and key id.
//!   [`VerifierKey::parse_for_origin`] also takes a bare public key (SPKI PEM, as in `ledger.pub`, or
//!   base64 of its 32 bytes) with the origin expected of it ([`DEFAULT_ORIGIN`] unless given): a bare key
//!   never trusts a checkpoint of another origin.
//! - Keys are named in messages one way only, as in the note signature lines: `<name>+<key id hex>`, the
//!   4-byte C2SP key id ([`VerifierKey`]'s `Display`).
//! - Signatures by other keys are ignored; a signature by the trusted key that fails to verify rejects the
//!   note; a note without a good signature by the trusted key is rejected; a checkpoint whose origin is
//!   not the trusted key's is rejected, naming both.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};

use crate::key::PublicKey;
use crate::merkle::Hash;

/// The origin (and key name) a ledger uses unless configured otherwise.
pub const DEFAULT_ORIGIN: &str = "hazchem.example/ledger";

/// The signature type byte of Ed25519 in signed notes.
pub const ED25519_TYPE: u8 = 0x01;

/// At most this many signature lines are looked at (the spec requires at least 16).
const MAX_SIGNATURES: usize = 64;

/// Why a note or checkpoint is refused. Every message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not a signed note.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// The note text is not a checkpoint.
    #[error("malformed checkpoint body: {0}")]
    Body(String),
    /// No signature line is by the trusted key.
    #[error("the note carries no signature by the trusted key {key} (it is signed by: {signers})")]
    NotSignedByKey { key: String, signers: String },
    /// The trusted key's signature does not verify: the text or the signature was altered, or it was
    /// signed by another key with the same name and id.
    #[error(
        "the signature by {key} does not verify: the checkpoint text or its signature was altered"
    )]
    BadSignature { key: String },
    /// The checkpoint is of another log than the trusted key's.
    #[error(
        "the checkpoint is of origin {found:?}, but the trusted key {key} is for origin {expected:?}: it \
         is another log's checkpoint"
    )]
    WrongOrigin {
        /// The trusted key's origin (its key name).
        expected: String,
        /// The checkpoint's origin line.
        found: String,
        /// The trusted key, `<name>+<key id hex>`.
        key: String,
    },
    /// A key string is malformed.
    #[error("malformed verifier key: {0}")]
    Key(String),
}

/// The three lines a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `hazchem.example/ledger`.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 6962 root hash of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Parses a note text (extension lines are allowed and ignored).
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let Some(text) = text.strip_suffix('\n') else {
            return Err(NoteError::Body("the text does not end in a newline".into()));
        };
        let mut lines = text.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(NoteError::Body("line 1 (origin) is empty".into()));
        }
        let size_line = lines
            .next()
            .ok_or_else(|| NoteError::Body("line 2 (tree size) is missing".into()))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(NoteError::Body(format!(
                "line 2 (tree size) {size_line:?} is not a decimal number without leading zeroes"
            )));
        }
        let size: u64 = size_line.parse().map_err(|_| {
            NoteError::Body(format!("line 2 (tree size) {size_line:?} is too large"))
        })?;
        let root_line = lines
            .next()
            .ok_or_else(|| NoteError::Body("line 3 (root hash) is missing".into()))?;
        let root: Hash = BASE64
            .decode(root_line)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                NoteError::Body(format!(
                    "line 3 (root hash) {root_line:?} is not base64 of 32 bytes"
                ))
            })?;
        for (i, extension) in lines.enumerate() {
            if extension.is_empty() {
                return Err(NoteError::Body(format!(
                    "line {} (extension) is empty",
                    i + 4
                )));
            }
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} size {} root {}",
            self.origin,
            self.size,
            hex::encode(self.root)
        )
    }
}

/// The key id of an Ed25519 key under `name`.
pub fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

pub(crate) fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::Key(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// Signs notes with an Ed25519 key: the ledger its checkpoints, a witness its cosignatures. `Debug` shows
/// only the public half.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    public: PublicKey,
    id: [u8; 4],
}

impl NoteSigner {
    /// A signer under key name `name` (the checkpoint origin). The key is an `ed25519_dalek::SigningKey`
    /// or anything that converts into one (`hazchem_pki::SigningKey` does).
    pub fn new(name: &str, key: impl Into<SigningKey>) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = key.into();
        let public = PublicKey::from(&key);
        let id = key_id(name, &public);
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            public,
            id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (which must end in a newline), returning the whole signed note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut blob = Vec::with_capacity(4 + signature.len());
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&signature);
        format!("{text}\n\u{2014} {} {}\n", self.name, BASE64.encode(blob))
    }

    /// Signs a checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> String {
        self.sign(&checkpoint.body())
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.public,
        }
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("public_key", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The one key an auditor trusts, under its name: the origin of the log whose checkpoints it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key name, which is the log's origin.
    name: String,
    key: PublicKey,
}

/// One signature line of a note.
pub(crate) struct SignatureLine<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: [u8; 4],
    pub(crate) signature: Vec<u8>,
}

/// Splits a signed note into its text and its signature lines.
pub(crate) fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    if let Some(c) = note.chars().find(|&c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(format!(
            "it contains the control character U+{:04X}",
            c as u32
        )));
    }
    let split = note.rfind("\n\n").ok_or_else(|| {
        NoteError::Malformed("no blank line separates the text from the signatures".into())
    })?;
    let text = &note[..=split];
    let signatures = &note[split + 2..];
    if signatures.is_empty() {
        return Err(NoteError::Malformed(
            "no signature lines follow the blank line".into(),
        ));
    }
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(NoteError::Malformed(
            "the last signature line does not end in a newline".into(),
        ));
    };
    let mut lines = Vec::new();
    for (i, line) in signatures.split('\n').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
            NoteError::Malformed(format!(
                "signature line {} does not start with \"\u{2014} \"",
                i + 1
            ))
        })?;
        let (name, encoded) = rest.split_once(' ').ok_or_else(|| {
            NoteError::Malformed(format!(
                "signature line {} has no space after the key name",
                i + 1
            ))
        })?;
        if name.is_empty() || encoded.contains(' ') {
            return Err(NoteError::Malformed(format!(
                "signature line {} is not \"\u{2014} <name> <base64>\"",
                i + 1
            )));
        }
        let blob = BASE64.decode(encoded).map_err(|_| {
            NoteError::Malformed(format!("signature line {} ({name}) is not base64", i + 1))
        })?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed(format!(
                "signature line {} ({name}) is too short",
                i + 1
            )));
        }
        lines.push(SignatureLine {
            name,
            id: [blob[0], blob[1], blob[2], blob[3]],
            signature: blob[4..].to_vec(),
        });
    }
    Ok((text, lines))
}

impl VerifierKey {
    /// A verifier key under `name` (the log's origin).
    pub fn new(name: &str, key: PublicKey) -> Result<Self, NoteError> {
        check_key_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key,
        })
    }

    /// `<name>+<hex id>+<base64(0x01||key)>`, or a bare public key (SPKI PEM or base64 of 32 bytes) for
    /// [`DEFAULT_ORIGIN`]; see [`VerifierKey::parse_for_origin`].
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        Self::parse_for_origin(text, None)
    }

    /// `<name>+<hex id>+<base64(0x01||key)>`, or a bare public key (SPKI PEM or base64 of 32 bytes).
    ///
    /// A bare key carries no name, so it is given one: `origin`, or [`DEFAULT_ORIGIN`] if `None`; only
    /// checkpoints of that origin, signed under that name, are trusted with it. A `<name>+…` key names its
    /// own origin; an `origin` that differs from it is refused.
    pub fn parse_for_origin(text: &str, origin: Option<&str>) -> Result<Self, NoteError> {
        let text = text.trim();
        let parts: Vec<&str> = text.splitn(3, '+').collect();
        let looks_like_vkey = parts.len() == 3
            && parts[1].len() == 8
            && parts[1].bytes().all(|b| b.is_ascii_hexdigit());
        if !looks_like_vkey {
            let key = PublicKey::parse(text).map_err(|e| {
                NoteError::Key(format!(
                    "expected <name>+<8 hex digits>+<base64 key>, an SPKI PEM public key, or base64 of a \
                     32-byte Ed25519 key ({e})"
                ))
            })?;
            return Self::new(origin.unwrap_or(DEFAULT_ORIGIN), key);
        }
        let (name, id_hex, encoded) = (parts[0], parts[1], parts[2]);
        check_key_name(name)?;
        let id: [u8; 4] = hex::decode(id_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| NoteError::Key(format!("key id {id_hex:?} is not 8 hex digits")))?;
        let blob = BASE64
            .decode(encoded)
            .map_err(|_| NoteError::Key("the key is not base64".into()))?;
        let (&kind, raw) = blob
            .split_first()
            .ok_or_else(|| NoteError::Key("the key is empty".into()))?;
        if kind != ED25519_TYPE {
            return Err(NoteError::Key(format!(
                "signature type 0x{kind:02x} is not Ed25519 (0x01)"
            )));
        }
        let raw: &[u8; 32] = raw.try_into().map_err(|_| {
            NoteError::Key(format!("an Ed25519 key is 32 bytes, got {}", raw.len()))
        })?;
        let key = PublicKey::from_bytes(raw).map_err(|e| NoteError::Key(e.to_string()))?;
        if key_id(name, &key) != id {
            return Err(NoteError::Key(format!(
                "key id {id_hex} does not match the key and name {name:?}"
            )));
        }
        if let Some(origin) = origin
            && origin != name
        {
            return Err(NoteError::Key(format!(
                "the key {name}+{id_hex} is for origin {name:?}, not for the origin {origin:?} asked for"
            )));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Reads a key file (either form), a bare key being for [`DEFAULT_ORIGIN`].
    pub fn load(path: &Path) -> crate::Result<Self> {
        Self::load_for_origin(path, None)
    }

    /// Reads a key file (either form); see [`VerifierKey::parse_for_origin`].
    pub fn load_for_origin(path: &Path, origin: Option<&str>) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        Self::parse_for_origin(&text, origin).map_err(|source| crate::Error::KeyFile {
            path: path.display().to_string(),
            source,
        })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The key name: the origin of the log whose checkpoints the key signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The C2SP key id, as in the note signature lines.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key)
    }

    /// The `<name>+<hex id>+<base64>` form.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![ED25519_TYPE];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            BASE64.encode(blob)
        )
    }

    /// Verifies a signed note and returns its text: it must carry a good signature under this key's name
    /// and key id. (A checkpoint's origin is checked by [`VerifierKey::open_checkpoint`].)
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, lines) = split_note(note)?;
        let id = self.key_id();
        let mut verified = false;
        for line in &lines {
            if line.name != self.name || line.id != id {
                continue;
            }
            if self.key.verify(text.as_bytes(), &line.signature).is_err() {
                return Err(NoteError::BadSignature {
                    key: self.to_string(),
                });
            }
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NotSignedByKey {
                key: self.to_string(),
                signers: lines
                    .iter()
                    .map(|l| format!("{}+{}", l.name, hex::encode(l.id)))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// Verifies a signed checkpoint and returns what it says: its origin must be this key's name (a
    /// checkpoint of another log is refused naming both origins, before its signatures are looked at), and
    /// it must carry a good signature by this key.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let claimed = unverified_checkpoint(note)?;
        if claimed.origin != self.name {
            return Err(NoteError::WrongOrigin {
                expected: self.name.clone(),
                found: claimed.origin,
                key: self.to_string(),
            });
        }
        Checkpoint::parse_body(self.verify(note)?)
    }
}

impl fmt::Display for VerifierKey {
    /// `<name>+<key id hex>`: the 4-byte C2SP key id, as the note signature lines carry it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.name, hex::encode(self.key_id()))
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Reads the checkpoint out of a note without verifying it (for messages; never trust the result).
pub fn unverified_checkpoint(note: &str) -> Result<Checkpoint, NoteError> {
    let (text, _) = split_note(note)?;
    Checkpoint::parse_body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn signer() -> NoteSigner {
        NoteSigner::new(DEFAULT_ORIGIN, generate()).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: DEFAULT_ORIGIN.into(),
            size: 1045,
            root: [7; 32],
        }
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let s = signer();
        let note = s.sign_checkpoint(&checkpoint());
        assert!(note.starts_with("hazchem.example/ledger\n1045\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\u{2014} hazchem.example/ledger "));
        assert_eq!(s.verifier().open_checkpoint(&note).unwrap(), checkpoint());
        // The vkey string and a bare key both work.
        let vkey = s.verifier().to_vkey();
        assert_eq!(VerifierKey::parse(&vkey).unwrap(), s.verifier());
        let bare = VerifierKey::parse(&s.verifier().public_key().to_pem()).unwrap();
        assert_eq!(bare.open_checkpoint(&note).unwrap(), checkpoint());
        let b64 = VerifierKey::parse(&s.verifier().public_key().to_base64()).unwrap();
        assert_eq!(b64.open_checkpoint(&note).unwrap(), checkpoint());
    }

    #[test]
    fn a_tampered_note_is_refused() {
        let s = signer();
        let note = s.sign_checkpoint(&checkpoint());
        let tampered = note.replacen("1045", "1046", 1);
        assert!(matches!(
            s.verifier().open_checkpoint(&tampered),
            Err(NoteError::BadSignature { .. })
        ));
        // A flipped signature byte.
        let (text, sig) = note.split_at(note.rfind(' ').unwrap() + 1);
        let mut blob = BASE64.decode(sig.trim_end()).unwrap();
        blob[10] ^= 1;
        let forged = format!("{text}{}\n", BASE64.encode(blob));
        assert!(matches!(
            s.verifier().open_checkpoint(&forged),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let note = signer().sign_checkpoint(&checkpoint());
        let other = signer();
        let err = other.verifier().open_checkpoint(&note).unwrap_err();
        assert!(matches!(err, NoteError::NotSignedByKey { .. }), "{err}");
        // Same name, same key id claimed, other key: the id differs, so it is simply not ours.
        let bare =
            VerifierKey::new(DEFAULT_ORIGIN, other.verifier().public_key().to_owned()).unwrap();
        assert!(bare.open_checkpoint(&note).is_err());
    }

    #[test]
    fn a_bare_key_trusts_only_its_origin() {
        let key = generate();
        let pem = PublicKey::from(&key).to_pem();
        let ours = NoteSigner::new(DEFAULT_ORIGIN, key.clone()).unwrap();
        let theirs = NoteSigner::new("other.example/ledger", key.clone()).unwrap();
        let other_log = Checkpoint {
            origin: "other.example/ledger".into(),
            ..checkpoint()
        };
        let note = theirs.sign_checkpoint(&other_log);

        // A bare key is for the default origin unless told otherwise...
        let bare = VerifierKey::parse(&pem).unwrap();
        assert_eq!(bare.name(), DEFAULT_ORIGIN);
        bare.open_checkpoint(&ours.sign_checkpoint(&checkpoint()))
            .unwrap();
        // ...and refuses a checkpoint of another origin, naming both (finding 5).
        let err = bare.open_checkpoint(&note).unwrap_err();
        assert!(
            matches!(&err, NoteError::WrongOrigin { expected, found, .. }
                if expected == DEFAULT_ORIGIN && found == "other.example/ledger"),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(DEFAULT_ORIGIN) && message.contains("other.example/ledger"),
            "{message}"
        );
        // Given the other origin, it opens that log's checkpoints, and no longer ours.
        let for_other = VerifierKey::parse_for_origin(&pem, Some("other.example/ledger")).unwrap();
        assert_eq!(for_other.open_checkpoint(&note).unwrap(), other_log);
        assert!(matches!(
            for_other.open_checkpoint(&ours.sign_checkpoint(&checkpoint())),
            Err(NoteError::WrongOrigin { .. })
        ));

        // The same key signing our origin's text under another key name is not our signature: a bare key
        // no longer matches "any name whose key id matches".
        let renamed = NoteSigner::new("evil.example/x", key).unwrap();
        let err = bare
            .open_checkpoint(&renamed.sign_checkpoint(&checkpoint()))
            .unwrap_err();
        assert!(matches!(err, NoteError::NotSignedByKey { .. }), "{err}");

        // A named key names its origin; asking it for another is refused.
        let vkey = ours.verifier().to_vkey();
        assert_eq!(
            VerifierKey::parse_for_origin(&vkey, Some(DEFAULT_ORIGIN)).unwrap(),
            ours.verifier()
        );
        let err = VerifierKey::parse_for_origin(&vkey, Some("other.example/ledger")).unwrap_err();
        assert!(
            err.to_string().contains(DEFAULT_ORIGIN)
                && err.to_string().contains("other.example/ledger"),
            "{err}"
        );
    }

    #[test]
    fn keys_are_named_by_their_c2sp_key_id_everywhere() {
        let s = signer();
        let note = s.sign_checkpoint(&checkpoint());
        // The key id in the signature line.
        let blob = BASE64
            .decode(note.trim_end().rsplit_once(' ').unwrap().1)
            .unwrap();
        let id = hex::encode(&blob[..4]);
        let named = s.verifier();
        let bare = VerifierKey::parse(&named.public_key().to_pem()).unwrap();
        for key in [&named, &bare] {
            assert_eq!(key.to_string(), format!("{DEFAULT_ORIGIN}+{id}"));
            assert_eq!(hex::encode(key.key_id()), id);
            assert!(
                key.to_vkey()
                    .starts_with(&format!("{DEFAULT_ORIGIN}+{id}+"))
            );
        }
        // And in the refusals.
        let other = signer().verifier();
        let err = other.open_checkpoint(&note).unwrap_err().to_string();
        assert!(
            err.contains(&other.to_string()) && err.contains(&format!("{DEFAULT_ORIGIN}+{id}")),
            "{err}"
        );
    }

    #[test]
    fn other_signatures_are_ignored() {
        let s = signer();
        let other = NoteSigner::new("witness.example/w1", generate()).unwrap();
        let text = checkpoint().body();
        let ours = s.sign(&text);
        let theirs = other.sign(&text);
        let cosigned = format!("{ours}{}", theirs.rsplit_once("\n\n").unwrap().1);
        assert_eq!(
            s.verifier().open_checkpoint(&cosigned).unwrap(),
            checkpoint()
        );
        // The witness's cosignature verifies under its own key; its key name is not the log's origin, so
        // it does not open the checkpoint as the log's.
        assert_eq!(other.verifier().verify(&cosigned).unwrap(), text);
        assert!(matches!(
            other.verifier().open_checkpoint(&cosigned),
            Err(NoteError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_notes_and_bodies_say_why() {
        let v = signer().verifier();
        for (note, needle) in [
            ("no blank line\n", "blank line"),
            ("a\n1\nAA==\n\n", "no signature lines"),
            ("a\n1\nAA==\n\nsig\n", "does not start"),
            ("a\n\u{7}\n\n\u{2014} a AAAAAAAA\n", "control character"),
        ] {
            let err = v.verify(note).unwrap_err().to_string();
            assert!(err.contains(needle), "{note:?}: {err}");
        }
        for (body, needle) in [
            (
                "o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                "leading zeroes",
            ),
            ("o\n1\nAAAA\n", "32 bytes"),
            ("o\n1\n", "root hash"),
            ("\n1\nAAAA\n", "origin"),
            (
                "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "newline",
            ),
        ] {
            let err = Checkpoint::parse_body(body).unwrap_err().to_string();
            assert!(err.contains(needle), "{body:?}: {err}");
        }
    }

    #[test]
    fn key_id_follows_the_spec() {
        // The key id is the first four bytes of SHA-256(name || "\n" || 0x01 || key).
        let s = signer();
        let key = s.verifier().public_key().to_owned();
        let mut input = b"hazchem.example/ledger\n\x01".to_vec();
        input.extend_from_slice(key.as_bytes());
        assert_eq!(key_id(DEFAULT_ORIGIN, &key), Sha256::digest(&input)[..4]);
    }
}
