//! Ed25519 edge cases of checkpoint verification (finding 8): a small-order public key is refused when a
//! key is loaded, in every form a key comes in; a non-canonical signature (`S ≥ L`) and a signature whose
//! `R` is a point of small order are refused (`verify_strict`), including the one a lax verifier accepts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::{EdwardsPoint, Scalar};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use hazchem_verify::note::{Checkpoint, NoteError};
use hazchem_verify::{DEFAULT_ORIGIN, NoteSigner, PublicKey, VerifierKey};
use sha2::{Digest as _, Sha256, Sha512};

fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn body() -> String {
    Checkpoint {
        origin: DEFAULT_ORIGIN.into(),
        size: 12,
        root: [3; 32],
    }
    .body()
}

/// The encodings of the eight points of order dividing 8 (the identity among them).
fn small_order_points() -> Vec<[u8; 32]> {
    let points: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect();
    assert!(points.contains(&{
        let mut identity = [0; 32];
        identity[0] = 1;
        identity
    }));
    points
}

/// `<name>+<id>+<base64(0x01 || key)>` with the key id computed as the spec says, for any 32 bytes.
fn vkey(name: &str, key: &[u8; 32]) -> String {
    let mut blob = vec![0x01];
    blob.extend_from_slice(key);
    let mut input = format!("{name}\n").into_bytes();
    input.extend_from_slice(&blob);
    let id = &Sha256::digest(&input)[..4];
    format!("{name}+{}+{}", hex::encode(id), BASE64.encode(blob))
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut input = format!("{name}\n\x01").into_bytes();
    input.extend_from_slice(key.as_bytes());
    Sha256::digest(&input)[..4].try_into().unwrap()
}

/// A note over `text` with one signature line by `key` under `name`, carrying `signature` as given.
fn note_with(text: &str, name: &str, key: &VerifyingKey, signature: &[u8; 64]) -> String {
    let mut blob = key_id(name, key).to_vec();
    blob.extend_from_slice(signature);
    format!("{text}\n\u{2014} {name} {}\n", BASE64.encode(blob))
}

/// L, the order of the base point, 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + L` as 32 little-endian bytes (it fits: `s < L < 2^253`).
fn plus_l(s: &[u8]) -> [u8; 32] {
    let l = L;
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(l[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// A signature over `message` whose `R` is the small-order point `r`, with `s = H(R ‖ A ‖ M)·a`: it
/// satisfies the cofactored equation `8sB = 8R + 8kA` for every such `R`, and the cofactorless one
/// `sB = R + kA` when `R` is the identity.
fn small_order_r_signature(key: &SigningKey, r: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(key.verifying_key().as_bytes())
            .chain_update(message)
            .finalize()
            .into(),
    );
    let s = k * key.to_scalar();
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(r);
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

#[test]
fn a_small_order_public_key_is_refused_in_every_form() {
    for point in small_order_points() {
        let weak = |result: Result<VerifierKey, NoteError>, form: &str| {
            let err = result.expect_err(form);
            assert!(
                err.to_string().contains("weak (small-order)"),
                "{form} {}: {err}",
                hex::encode(point)
            );
        };
        assert!(PublicKey::from_bytes(&point).is_err());
        // Bare base64, as in a key file.
        weak(VerifierKey::parse(&BASE64.encode(point)), "base64");
        // SPKI PEM, as `ledger.pub`.
        let pem = VerifyingKey::from_bytes(&point)
            .expect("a small-order point decodes")
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        weak(VerifierKey::parse(&pem), "PEM");
        // The vkey form, with a key id that matches the key.
        weak(VerifierKey::parse(&vkey(DEFAULT_ORIGIN, &point)), "vkey");
        // From a file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.pub");
        std::fs::write(&path, &pem).unwrap();
        let err = VerifierKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("weak (small-order)"), "{err}");
    }
}

#[test]
fn a_non_canonical_signature_is_refused() {
    let key = generate();
    let signer = NoteSigner::new(DEFAULT_ORIGIN, key.clone()).unwrap();
    let verifier = signer.verifier();
    let text = body();
    let signature = key.sign(text.as_bytes()).to_bytes();
    // The canonical signature, written by hand, verifies: the notes below differ only in the signature.
    let good = note_with(&text, DEFAULT_ORIGIN, &key.verifying_key(), &signature);
    assert_eq!(good, signer.sign(&text));
    verifier.open_checkpoint(&good).unwrap();

    // S + L: the same scalar modulo L, so the same group equation, but not the canonical encoding.
    assert_eq!(Scalar::from_bytes_mod_order(L), Scalar::ZERO);
    let mut malleated = signature;
    malleated[32..].copy_from_slice(&plus_l(&signature[32..]));
    assert_eq!(
        Scalar::from_bytes_mod_order(malleated[32..].try_into().unwrap()).to_bytes(),
        signature[32..]
    );
    let err = verifier
        .open_checkpoint(&note_with(
            &text,
            DEFAULT_ORIGIN,
            &key.verifying_key(),
            &malleated,
        ))
        .unwrap_err();
    assert!(matches!(err, NoteError::BadSignature { .. }), "{err}");

    // S with its top bits set (far above L).
    let mut high = signature;
    high[63] |= 0xe0;
    let err = verifier
        .open_checkpoint(&note_with(
            &text,
            DEFAULT_ORIGIN,
            &key.verifying_key(),
            &high,
        ))
        .unwrap_err();
    assert!(matches!(err, NoteError::BadSignature { .. }), "{err}");
    assert!(
        verifier
            .public_key()
            .verify(text.as_bytes(), &malleated)
            .is_err()
    );
}

#[test]
fn a_signature_with_a_small_order_r_is_refused() {
    let key = generate();
    let verifier = NoteSigner::new(DEFAULT_ORIGIN, key.clone())
        .unwrap()
        .verifier();
    let text = body();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for r in small_order_points() {
        let signature = small_order_r_signature(&key, &r, text.as_bytes());
        if r == identity {
            // A lax (cofactorless, no small-order check) verifier accepts this forgery-shaped signature:
            // R is the identity and sB = kA.
            assert_eq!(
                EdwardsPoint::mul_base(&Scalar::from_bytes_mod_order(
                    signature[32..].try_into().unwrap()
                )),
                EdwardsPoint::mul_base(&key.to_scalar())
                    * Scalar::from_bytes_mod_order_wide(
                        &Sha512::new()
                            .chain_update(r)
                            .chain_update(key.verifying_key().as_bytes())
                            .chain_update(text.as_bytes())
                            .finalize()
                            .into()
                    )
            );
            assert!(
                ed25519_dalek::Verifier::verify(
                    &key.verifying_key(),
                    text.as_bytes(),
                    &ed25519_dalek::Signature::from_bytes(&signature)
                )
                .is_ok(),
                "the lax verifier accepts it"
            );
        }
        let note = note_with(&text, DEFAULT_ORIGIN, &key.verifying_key(), &signature);
        let err = verifier.open_checkpoint(&note).unwrap_err();
        assert!(
            matches!(err, NoteError::BadSignature { .. }),
            "R = {}: {err}",
            hex::encode(r)
        );
        assert!(
            verifier
                .public_key()
                .verify(text.as_bytes(), &signature)
                .is_err()
        );
    }
}
