//! Ed25519 edge cases of origin signatures (finding 8): a small-order public key is refused when it is
//! loaded, in every form (raw, base64, SPKI PEM, a key file, `signing-keys.toml`); a non-canonical
//! signature (`S ≥ L`) and a signature whose `R` is a point of small order are refused by the registry
//! (`verify_strict`), including the one a lax verifier accepts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use curve25519_dalek::Scalar;
use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use hazchem_domain::Department;
use hazchem_pki::{KeyRegistry, PublicKey, SignatureError, SigningKey};
use sha2::{Digest as _, Sha512};

/// L, the order of the base point, 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The encodings of the eight points of order dividing 8 (the identity among them).
fn small_order_points() -> Vec<[u8; 32]> {
    EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect()
}

fn identity() -> [u8; 32] {
    let mut identity = [0; 32];
    identity[0] = 1;
    identity
}

fn registry_with(department: Department, key: &SigningKey) -> KeyRegistry {
    let mut registry = KeyRegistry::new();
    registry.insert(department, key.public_key());
    registry
}

/// Verifies through the registry, under the key's own id, for an event accepted now.
fn verify(
    registry: &KeyRegistry,
    department: Department,
    key: &SigningKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    registry
        .verify(
            department,
            &key.origin_key_id(department),
            message,
            signature,
            at,
        )
        .map(|_| ())
}

/// `R` the small-order point `r`, `s = H(R ‖ A ‖ M)·a`: the cofactored equation holds for every such
/// `R`, the cofactorless one when `R` is the identity.
fn small_order_r_signature(key: &SigningKey, r: &[u8; 32], message: &[u8]) -> [u8; 64] {
    // The same key as an `ed25519_dalek` key, for its secret scalar.
    let dalek = ed25519_dalek::SigningKey::from(SigningKey::from_pkcs8_pem(&pem_of(key)).unwrap());
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(key.public_key().as_bytes())
            .chain_update(message)
            .finalize()
            .into(),
    );
    let s = k * dalek.to_scalar();
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(r);
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

/// The key's PKCS#8 PEM (through a file, the only way the crate writes it).
fn pem_of(key: &SigningKey) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.sign.key");
    key.save(&path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn a_small_order_public_key_is_refused_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    for point in small_order_points() {
        let weak = |result: Result<PublicKey, hazchem_pki::PkiError>, form: &str| {
            let err = result.expect_err(form);
            assert!(
                err.to_string().contains("weak (small-order)"),
                "{form} {}: {err}",
                hex_of(&point)
            );
        };
        weak(PublicKey::from_bytes(&point), "raw");
        weak(PublicKey::from_base64(&BASE64.encode(point)), "base64");
        let pem = VerifyingKey::from_bytes(&point)
            .expect("a small-order point decodes")
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        weak(PublicKey::from_pem(&pem), "PEM");
        weak(PublicKey::parse(&pem), "parse");
        let path = dir.path().join("weak.pub");
        std::fs::write(&path, &pem).unwrap();
        weak(PublicKey::load(&path), "file");
        // As a department's registered key.
        let err =
            KeyRegistry::from_toml_str(&format!("psb = \"{}\"", BASE64.encode(point))).unwrap_err();
        assert!(
            err.to_string().contains("`psb`") && err.to_string().contains("weak (small-order)"),
            "{err}"
        );
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_non_canonical_signature_is_refused() {
    assert_eq!(Scalar::from_bytes_mod_order(L), Scalar::ZERO);
    let key = SigningKey::generate();
    let registry = registry_with(Department::Psb, &key);
    let message = b"highly toxic purchase permit";
    let signature = key.sign(message);
    verify(&registry, Department::Psb, &key, message, &signature).unwrap();

    // S + L: the same scalar modulo L, but not its canonical encoding.
    let mut malleated = signature;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(signature[32 + i]) + u16::from(L[i]) + carry;
        malleated[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_ne!(malleated, signature);
    assert_eq!(
        Scalar::from_bytes_mod_order(malleated[32..].try_into().unwrap()).to_bytes(),
        signature[32..]
    );
    assert_eq!(
        verify(&registry, Department::Psb, &key, message, &malleated),
        Err(SignatureError::BadSignature {
            department: Department::Psb,
            key_id: key.origin_key_id(Department::Psb),
        })
    );
    assert!(key.public_key().verify(message, &malleated).is_err());

    // S with its top bits set.
    let mut high = signature;
    high[63] |= 0xe0;
    assert!(matches!(
        verify(&registry, Department::Psb, &key, message, &high),
        Err(SignatureError::BadSignature { .. })
    ));
}

#[test]
fn a_signature_with_a_small_order_r_is_refused() {
    let key = SigningKey::generate();
    let registry = registry_with(Department::Emergency, &key);
    let message = b"credit listing decided";
    for r in small_order_points() {
        let signature = small_order_r_signature(&key, &r, message);
        if r == identity() {
            // A lax verifier (no small-order check, cofactorless) accepts it.
            let lax = VerifyingKey::from(key.public_key());
            assert!(
                ed25519_dalek::Verifier::verify(
                    &lax,
                    message,
                    &ed25519_dalek::Signature::from_bytes(&signature)
                )
                .is_ok(),
                "the lax verifier accepts it"
            );
        }
        assert!(
            matches!(
                verify(&registry, Department::Emergency, &key, message, &signature),
                Err(SignatureError::BadSignature { .. })
            ),
            "R = {}",
            hex_of(&r)
        );
        assert!(key.public_key().verify(message, &signature).is_err());
    }
}
