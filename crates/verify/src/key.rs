//! The Ed25519 public key the signed-note format needs: read from SPKI PEM (`ledger.pub`) or base64 of its
//! 32 bytes, weak (small-order) keys refused, signatures checked with `verify_strict` (which also rejects
//! non-canonical signatures).
//!
//! It reads and writes the same forms as `hazchem_pki::PublicKey` (the bus's key type, which also knows
//! departments and key files); this crate keeps its own so that it does not depend on the PKI crate and
//! its TLS stack. Signing keys are `ed25519_dalek::SigningKey`s (see [`crate::note::NoteSigner`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};

use crate::error::{Error, Result};

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LENGTH: usize = ed25519_dalek::SIGNATURE_LENGTH;

/// An Ed25519 public key; never a weak one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Ed25519 signature does not verify")]
pub struct BadSignature;

impl PublicKey {
    /// From the 32 raw bytes. Weak (small-order) keys are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key =
            VerifyingKey::from_bytes(bytes).map_err(|e| Error::key("Ed25519 public key", e))?;
        Self::checked(key)
    }

    /// From base64 (standard alphabet, padded) of the 32 raw bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| Error::key("base64 Ed25519 public key", e))?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::key(
                "base64 Ed25519 public key",
                format!("expected 32 bytes, got {}", bytes.len()),
            )
        })?;
        Self::from_bytes(&bytes)
    }

    /// From SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| Error::key("Ed25519 SPKI PEM public key", e))?;
        Self::checked(key)
    }

    /// From either SPKI PEM or base64 of the raw key.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_base64(text)
        }
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
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        let bytes: &[u8; SIGNATURE_LENGTH] = signature.try_into().map_err(|_| BadSignature)?;
        self.0
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(bytes))
            .map_err(|_| BadSignature)
    }

    /// The `ed25519_dalek` key.
    pub fn as_ed25519(&self) -> &VerifyingKey {
        &self.0
    }

    fn checked(key: VerifyingKey) -> Result<Self> {
        if key.is_weak() {
            return Err(Error::key(
                "Ed25519 public key",
                "it is a weak (small-order) key",
            ));
        }
        Ok(Self(key))
    }
}

impl TryFrom<VerifyingKey> for PublicKey {
    type Error = Error;

    /// Refuses a weak key.
    fn try_from(key: VerifyingKey) -> Result<Self> {
        Self::checked(key)
    }
}

impl From<&ed25519_dalek::SigningKey> for PublicKey {
    /// The public half. Never weak: the secret scalar is clamped to a non-zero multiple of the cofactor,
    /// so its public point lies in the prime-order subgroup.
    fn from(key: &ed25519_dalek::SigningKey) -> Self {
        Self(key.verifying_key())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn generate() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
    }

    #[test]
    fn both_encodings_round_trip() {
        let public = PublicKey::from(&generate());
        assert!(public.to_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::parse(&public.to_pem()).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_base64()).unwrap(), public);
    }

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        // The identity point, a small-order key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let err = PublicKey::from_bytes(&identity).unwrap_err();
        assert!(err.to_string().contains("weak"), "{err}");
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(PublicKey::try_from(weak).is_err());
        let err = PublicKey::parse("AAAA").unwrap_err();
        assert!(err.to_string().contains("expected 32 bytes"), "{err}");
        assert!(
            PublicKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err()
        );
    }

    #[test]
    fn verification_is_strict_about_the_message_and_the_signature() {
        use ed25519_dalek::Signer as _;
        let key = generate();
        let public = PublicKey::from(&key);
        let signature = key.sign(b"checkpoint").to_bytes();
        public.verify(b"checkpoint", &signature).unwrap();
        assert_eq!(public.verify(b"checkpoinT", &signature), Err(BadSignature));
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert_eq!(public.verify(b"checkpoint", &flipped), Err(BadSignature));
        assert_eq!(
            public.verify(b"checkpoint", &signature[..63]),
            Err(BadSignature)
        );
    }
}
