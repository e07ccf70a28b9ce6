//! Ed25519 origin signatures and the registry of departments' public keys.
//!
//! Every department signs what it publishes with its own Ed25519 key, so that a record can be traced
//! to its origin independently of the transport: the gateway checks the signature against the
//! department's *registered* public key ([`KeyRegistry`], `signing-keys.toml`). The ledger signs its
//! checkpoints the same way; auditors hold only its public key ([`PublicKey`], `ledger.pub`).
//!
//! Private keys are PKCS#8 PEM files. Public keys travel as base64 of the 32-byte key (in the
//! registry) or as SPKI PEM (`ledger.pub`); [`PublicKey::parse`] reads both. Verification uses
//! `verify_strict`, which rejects weak keys and non-canonical signatures.

use std::collections::BTreeMap;
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

use crate::error::{PkiError, SignatureError};
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
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.verify_as(message, signature, None)
    }

    fn verify_as(
        &self,
        message: &[u8],
        signature: &[u8],
        signer: Option<Department>,
    ) -> Result<(), SignatureError> {
        let bytes: &[u8; SIGNATURE_LENGTH] =
            signature
                .try_into()
                .map_err(|_| SignatureError::MalformedSignature {
                    length: signature.len(),
                })?;
        let signature = Signature::from_bytes(bytes);
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| SignatureError::BadSignature { signer })
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

/// The registered origin-signing public keys of the departments (`signing-keys.toml`).
///
/// The file is a flat TOML table from department code to base64 public key:
///
/// ```toml
/// miit = "2d0Cq0...="
/// psb = "Vd1q8x...="
/// ```
///
/// Unknown department codes and malformed keys are errors, naming the entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRegistry {
    keys: BTreeMap<Department, PublicKey>,
}

impl KeyRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a department's key, returning the previous one.
    pub fn insert(&mut self, department: Department, key: PublicKey) -> Option<PublicKey> {
        self.keys.insert(department, key)
    }

    /// The key registered for a department.
    pub fn get(&self, department: Department) -> Option<&PublicKey> {
        self.keys.get(&department)
    }

    /// The departments with a registered key, in the order of [`Department::ALL`].
    pub fn departments(&self) -> impl Iterator<Item = Department> + '_ {
        self.keys.keys().copied()
    }

    /// Number of registered keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses the TOML form.
    pub fn from_toml_str(text: &str) -> Result<Self, PkiError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PkiError::registry(e.message().to_owned()))?;
        let mut registry = Self::new();
        for (code, value) in &table {
            let department: Department = code.parse().map_err(|_| {
                PkiError::registry(format!(
                    "`{code}` is not a department code; known: {}",
                    Department::ALL
                        .iter()
                        .map(|d| d.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let text = value.as_str().ok_or_else(|| {
                PkiError::registry(format!(
                    "the key of `{code}` must be a base64 string, found a {}",
                    value.type_str()
                ))
            })?;
            let key = PublicKey::from_base64(text)
                .map_err(|e| PkiError::registry(format!("the key of `{code}`: {e}")))?;
            registry.insert(department, key);
        }
        Ok(registry)
    }

    /// Loads `signing-keys.toml`.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = fsutil::read_string(path)?;
        Self::from_toml_str(&text).map_err(|e| match e {
            PkiError::Registry { reason, .. } => PkiError::Registry {
                origin: Some(path.to_owned()),
                reason,
            },
            other => other,
        })
    }

    /// The TOML form, departments in the order of [`Department::ALL`], with a header comment.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::from(
            "# Hazchem Bus: registered origin-signing public keys.\n\
             # Department code = base64 of the department's 32-byte Ed25519 public key.\n\
             # The gateway accepts an event only if its signature verifies against this key.\n",
        );
        for (department, key) in &self.keys {
            out.push_str(&format!(
                "{} = \"{}\"\n",
                department.code(),
                key.to_base64()
            ));
        }
        out
    }

    /// Writes the TOML form to `path` (world-readable: it holds public keys only).
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        fsutil::write_file(path, self.to_toml_string().as_bytes(), Access::Public)
    }

    /// Verifies a department's origin signature over `message`.
    ///
    /// Fails with [`SignatureError::NoKeyRegistered`] if the department has no key,
    /// [`SignatureError::MalformedSignature`] if the signature is not 64 bytes, and
    /// [`SignatureError::BadSignature`] if it does not verify (`verify_strict`).
    pub fn verify(
        &self,
        department: Department,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let key = self
            .get(department)
            .ok_or(SignatureError::NoKeyRegistered { department })?;
        key.verify_as(message, signature, Some(department))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(code: &str) -> Department {
        code.parse().unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("miit"), key.public_key());
        let signature = key.sign(b"event bytes");
        registry
            .verify(dept("miit"), b"event bytes", &signature)
            .unwrap();
        key.public_key().verify(b"event bytes", &signature).unwrap();
    }

    #[test]
    fn tampered_message_is_rejected() {
        let key = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("psb"), key.public_key());
        let signature = key.sign(b"licence granted");
        assert_eq!(
            registry.verify(dept("psb"), b"licence revoked", &signature),
            Err(SignatureError::BadSignature {
                signer: Some(dept("psb"))
            })
        );
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert!(matches!(
            registry.verify(dept("psb"), b"licence granted", &flipped),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let registered = SigningKey::generate();
        let impostor = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("eeb"), registered.public_key());
        let signature = impostor.sign(b"discharge permit");
        let err = registry
            .verify(dept("eeb"), b"discharge permit", &signature)
            .unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }));
        assert!(err.to_string().contains("`eeb`"), "{err}");
    }

    #[test]
    fn unknown_department_is_rejected() {
        let key = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("miit"), key.public_key());
        let err = registry
            .verify(dept("fire"), b"m", &key.sign(b"m"))
            .unwrap_err();
        assert_eq!(
            err,
            SignatureError::NoKeyRegistered {
                department: dept("fire")
            }
        );
        assert!(err.to_string().contains("`fire`"), "{err}");
    }

    #[test]
    fn malformed_signature_length_is_rejected() {
        let key = SigningKey::generate();
        let mut registry = KeyRegistry::new();
        registry.insert(dept("msa"), key.public_key());
        let signature = key.sign(b"m");
        for length in [0, 63, 65] {
            let mut bytes = signature.to_vec();
            bytes.resize(length, 0);
            assert_eq!(
                registry.verify(dept("msa"), b"m", &bytes),
                Err(SignatureError::MalformedSignature { length })
            );
        }
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
    fn conversions_to_ed25519_dalek_keep_the_key() {
        let key = SigningKey::generate();
        let public = key.public_key();
        let signature = key.sign(b"m");
        let dalek = ed25519_dalek::SigningKey::from(key);
        assert_eq!(dalek.verifying_key(), VerifyingKey::from(public));
        assert_eq!(dalek.sign(b"m").to_bytes(), signature);
    }

    #[test]
    fn registry_toml_round_trip_and_errors() {
        let mut registry = KeyRegistry::new();
        for d in Department::ALL {
            registry.insert(d, SigningKey::generate().public_key());
        }
        let text = registry.to_toml_string();
        assert_eq!(KeyRegistry::from_toml_str(&text).unwrap(), registry);
        assert_eq!(registry.len(), 9);

        let key = SigningKey::generate().public_key_base64();
        let err = KeyRegistry::from_toml_str(&format!("mof = \"{key}\"")).unwrap_err();
        assert!(
            err.to_string().contains("`mof` is not a department code"),
            "{err}"
        );
        let err = KeyRegistry::from_toml_str("miit = \"AAAA\"").unwrap_err();
        assert!(err.to_string().contains("`miit`"), "{err}");
        let err = KeyRegistry::from_toml_str("miit = 3").unwrap_err();
        assert!(err.to_string().contains("base64 string"), "{err}");
    }
}
