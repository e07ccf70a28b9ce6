//! Ed25519 origin signatures and the registry of departments' public keys.
//!
//! Every department signs what it publishes with its own Ed25519 key, so that a record can be traced
//! to its origin independently of the transport: the gateway checks the signature against the
//! department's *registered* public key that the signature's key id names, valid when the event is
//! accepted ([`KeyRegistry`], `signing-keys.toml`: the registry is `hazchem_verify::registry`'s, so that
//! an auditor's tool reads the same file without this crate). The ledger signs its checkpoints the same
//! way; auditors hold only its public key ([`PublicKey`], `ledger.pub`).
//!
//! Private keys are PKCS#8 PEM files. Public keys travel as base64 of the 32-byte key (in the
//! registry) or as SPKI PEM (`ledger.pub`); [`PublicKey::parse`] reads both. Verification uses
//! `verify_strict`, which rejects weak keys and non-canonical signatures.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use hazchem_domain::Department;
pub use hazchem_verify::registry::{KeyRegistry, OriginKey, SignatureError, origin_key_id};

use crate::error::PkiError;
use crate::fsutil::{self, Access};

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LENGTH: usize = ed25519_dalek::SIGNATURE_LENGTH;

/// An Ed25519 private key: a department's origin-signing key or the ledger's checkpoint key.
///
/// `Debug` shows only the public half; the secret is never printed.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Decodes a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|e| PkiError::decode("Ed25519 PKCS#8 private key", e))
    }

    /// Loads a PKCS#8 PEM private key from a file.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let pem = fsutil::read_string(path)?;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .map(Self)
            .map_err(|e| {
                PkiError::decode(
                    format!("Ed25519 PKCS#8 private key from `{}`", path.display()),
                    e,
                )
            })
    }

    /// Writes the key as PKCS#8 PEM to `path`, readable by the owner only (mode 0600).
    ///
    /// The file is PKCS#8 v1 (RFC 8410, private key only), which OpenSSL and other tools read;
    /// [`SigningKey::load`] also accepts v2 files that carry the public key.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        let keypair = KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        let pem = keypair
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::decode("Ed25519 private key for PKCS#8 encoding", e))?;
        fsutil::write_file(path, pem.as_bytes(), Access::Private)
    }

    /// Signs `message`, returning the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LENGTH] {
        self.0.sign(message).to_bytes()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The public half as base64 of its 32 bytes, the form used in `signing-keys.toml`.
    pub fn public_key_base64(&self) -> String {
        self.public_key().to_base64()
    }

    /// The key id an origin signature by this key for `department` carries (`<code>+<8 hex digits>`,
    /// [`origin_key_id`]).
    pub fn origin_key_id(&self, department: Department) -> String {
        origin_key_id(department, &self.public_key().into())
    }
}

/// The `ed25519_dalek` key, for code that signs without this crate (`hazchem_verify::NoteSigner`, which
/// an auditor's tool uses without the PKI crate, takes one).
impl From<SigningKey> for ed25519_dalek::SigningKey {
    fn from(key: SigningKey) -> Self {
        key.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key_base64())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From the 32 raw bytes. Weak (small-order) keys are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, PkiError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|e| PkiError::decode("Ed25519 public key", e))?;
        Self::checked(key)
    }

    /// From base64 (standard alphabet, padded) of the 32 raw bytes.
    pub fn from_base64(text: &str) -> Result<Self, PkiError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| PkiError::decode("base64 Ed25519 public key", e))?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            PkiError::decode(
                "base64 Ed25519 public key",
                format!("expected 32 bytes, got {}", bytes.len()),
            )
        })?;
        Self::from_bytes(&bytes)
    }

    /// From SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| PkiError::decode("Ed25519 SPKI PEM public key", e))?;
        Self::checked(key)
    }

    /// From either SPKI PEM or base64 of the raw key.
    pub fn parse(text: &str) -> Result<Self, PkiError> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_base64(text)
        }
    }

    /// Loads a public key file in either form (e.g. `ledger.pub`).
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = fsutil::read_string(path)?;
        Self::parse(&text).map_err(|e| match e {
            PkiError::Decode { what, reason } => PkiError::Decode {
                what: format!("{what} from `{}`", path.display()),
                reason,
            },
            other => other,
        })
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Base64 (standard, padded) of the 32 raw bytes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }

    /// SPKI PEM, the form of `ledger.pub`.
    pub fn to_pem(&self) -> String {
        // Encoding a valid 32-byte key as SPKI cannot fail; fall back to nothing rather than panic.
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Verifies `signature` over `message` with `verify_strict`.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), hazchem_verify::key::BadSignature> {
        let bytes: &[u8; SIGNATURE_LENGTH] = signature
            .try_into()
            .map_err(|_| hazchem_verify::key::BadSignature)?;
        self.0
            .verify_strict(message, &Signature::from_bytes(bytes))
            .map_err(|_| hazchem_verify::key::BadSignature)
    }

    fn checked(key: VerifyingKey) -> Result<Self, PkiError> {
        if key.is_weak() {
            return Err(PkiError::decode(
                "Ed25519 public key",
                "it is a weak (small-order) key",
            ));
        }
        Ok(Self(key))
    }
}

/// The `ed25519_dalek` key (`hazchem_verify::PublicKey` converts from it, refusing weak keys as this
/// type does).
impl From<PublicKey> for VerifyingKey {
    fn from(key: PublicKey) -> Self {
        key.0
    }
}

/// Reads a key registry file (`signing-keys.toml`, [`KeyRegistry::from_toml_str`]), failing with a
/// [`PkiError`] that names the file.
pub fn load_key_registry(path: &Path) -> Result<KeyRegistry, PkiError> {
    let text = fsutil::read_string(path)?;
    KeyRegistry::from_toml_str(&text).map_err(|e| PkiError::Registry {
        origin: Some(path.to_owned()),
        reason: match e {
            hazchem_verify::Error::Registry { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// The verifier's key type (the registry's): the same key, never weak (this type refuses weak keys too).
impl From<PublicKey> for hazchem_verify::PublicKey {
    fn from(key: PublicKey) -> Self {
        hazchem_verify::PublicKey::try_from(key.0).expect("a PublicKey is never weak")
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(code: &str) -> Department {
        code.parse().unwrap()
    }

    fn at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    #[test]
    fn sign_and_verify_through_the_registry() {
        let key = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("miit"), key.public_key());
        let signature = key.sign(b"event bytes");
        let id = key.origin_key_id(dept("miit"));
        assert!(id.starts_with("miit+"), "{id}");
        let found = registry
            .verify(dept("miit"), &id, b"event bytes", &signature, at())
            .unwrap();
        assert_eq!(found.id(), id);
        key.public_key().verify(b"event bytes", &signature).unwrap();
        assert!(key.public_key().verify(b"event bytez", &signature).is_err());
    }

    #[test]
    fn wrong_key_is_rejected_naming_the_department() {
        let registered = SigningKey::generate();
        let impostor = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("eeb"), registered.public_key());
        let signature = impostor.sign(b"discharge permit");
        let err = registry
            .verify(
                dept("eeb"),
                &registered.origin_key_id(dept("eeb")),
                b"discharge permit",
                &signature,
                at(),
            )
            .unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }));
        assert!(err.to_string().contains("`eeb`"), "{err}");
        // The impostor's own key id is not registered.
        let err = registry
            .verify(
                dept("eeb"),
                &impostor.origin_key_id(dept("eeb")),
                b"discharge permit",
                &signature,
                at(),
            )
            .unwrap_err();
        assert!(matches!(err, SignatureError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn pem_round_trips_and_debug_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sign.key");
        let key = SigningKey::generate();
        key.save(&path).unwrap();
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // PKCS#8 v1 (RFC 8410): 48 bytes of DER, no embedded public key, readable by OpenSSL.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(BASE64.decode(body).unwrap().len(), 48);
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&pem.lines().nth(1).unwrap()[..20]));
        // Public keys in both encodings.
        let public = key.public_key();
        assert_eq!(PublicKey::parse(&public.to_pem()).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_base64()).unwrap(), public);
    }

    #[test]
    fn conversions_to_ed25519_dalek_and_the_verifier_keep_the_key() {
        let key = SigningKey::generate();
        let public = key.public_key();
        let signature = key.sign(b"m");
        let verifier_key = hazchem_verify::PublicKey::from(public);
        assert_eq!(verifier_key.as_bytes(), public.as_bytes());
        let dalek = ed25519_dalek::SigningKey::from(key);
        assert_eq!(dalek.verifying_key(), VerifyingKey::from(public));
        assert_eq!(dalek.sign(b"m").to_bytes(), signature);
    }
}
