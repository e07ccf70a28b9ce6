//! Property-based fuzzing of everything the verifier reads from outside: the note parser (signed
//! checkpoints and verifier keys), the proof checkers and the bundle's record lines. Nothing panics on any
//! input, and nothing but the genuine article is accepted: a checkpoint note verifies only as signed, and
//! an inclusion or consistency proof only as generated, a witness's cosignature only for the text and time
//! it signed.
//!
//! The test suite runs a short campaign; a long one is
//! `PROPTEST_CASES=200000 cargo test --release -p hazchem-verify --test fuzz` (docs/LEDGER.md).

use hazchem_verify::bundle::BundleRecord;
use hazchem_verify::merkle::{self, Hash, MemoryTree};
use hazchem_verify::note::{Checkpoint, NoteSigner, VerifierKey, unverified_checkpoint};
use hazchem_verify::witness::{Cosigner, WitnessKey, add_cosignatures, verify_cosignatures};
use proptest::prelude::*;

const ORIGIN: &str = "hazchem.example/ledger";

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])).unwrap()
}

fn cosigner() -> Cosigner {
    Cosigner::new(
        "hazchem.example/witness/w1",
        ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]),
    )
    .unwrap()
}

fn tree(n: u64) -> MemoryTree {
    MemoryTree::from_leaf_hashes((0..n).map(|i| merkle::leaf_hash(&i.to_be_bytes())))
}

/// One edit of a text: a byte flipped, removed, inserted or a line duplicated or dropped.
fn mutate(text: &str, kind: u8, at: usize, byte: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return String::from_utf8_lossy(&[byte]).into_owned();
    }
    let at = at % bytes.len();
    match kind % 5 {
        0 => bytes[at] ^= byte | 1,
        1 => {
            bytes.remove(at);
        }
        2 => bytes.insert(at, byte),
        3 => {
            let lines: Vec<&str> = text.split('\n').collect();
            let i = at % lines.len();
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            return out.join("\n");
        }
        _ => {
            let lines: Vec<&str> = text.split('\n').collect();
            let i = at % lines.len();
            let mut out = lines.clone();
            out.remove(i);
            return out.join("\n");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the note parser, the key parser, the line reader, the witness request
    /// parser, the key registry parser or the record wire reader.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let key = signer().verifier();
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for input in [&text, &lossy] {
            let _ = key.verify(input);
            let _ = key.open_checkpoint(input);
            let _ = unverified_checkpoint(input);
            let _ = VerifierKey::parse(input);
            let _ = BundleRecord::from_line(input);
            let _ = WitnessKey::parse(input);
            let _ = WitnessKey::parse_list(input);
            let _ = verify_cosignatures(input, &[cosigner().witness_key()]);
            let _ = hazchem_verify::witness::AddCheckpoint::parse(input);
            let _ = hazchem_verify::KeyRegistry::from_toml_str(input);
            let _ = hazchem_verify::record::read_record(input.as_bytes());
        }
        let _ = hazchem_verify::record::read_record(&bytes);
        let _ = hazchem_verify::record::payload_types(&bytes);
    }

    /// A cosigned note counts its witness's cosignature; an edit of it counts it only if the note's text
    /// and the cosignature's time are intact.
    #[test]
    fn an_edited_cosignature_never_counts_for_another_text_or_time(
        size in 0u64..1000,
        time in any::<u64>(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let checkpoint = Checkpoint { origin: ORIGIN.into(), size, root: merkle::leaf_hash(&size.to_be_bytes()) };
        let witness = cosigner();
        let keys = [witness.witness_key()];
        let note = add_cosignatures(&signer().sign_checkpoint(&checkpoint), &[witness.cosign(&checkpoint.body(), time)]);
        let good = verify_cosignatures(&note, &keys).unwrap();
        prop_assert_eq!(good.len(), 1);
        prop_assert_eq!(good[0].time, time);
        let mut edited = note.clone();
        for (kind, at, byte) in edits {
            edited = mutate(&edited, kind, at, byte);
        }
        if let Ok(good) = verify_cosignatures(&edited, &keys)
            && let Some(c) = good.first()
        {
            prop_assert_eq!(c.time, time, "an edited cosignature counted at another time: {:?}", edited);
            prop_assert_eq!(unverified_checkpoint(&edited).ok(), Some(checkpoint), "{:?}", edited);
        }
    }

    /// A genuine checkpoint note verifies; any edit of it verifies only if it leaves the note's meaning
    /// intact (the same checkpoint), and never as another checkpoint.
    #[test]
    fn an_edited_checkpoint_never_verifies_as_another(
        size in 0u64..1000,
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let signer = signer();
        let key = signer.verifier();
        let checkpoint = Checkpoint { origin: ORIGIN.into(), size, root: merkle::leaf_hash(&size.to_be_bytes()) };
        let note = signer.sign_checkpoint(&checkpoint);
        prop_assert_eq!(key.open_checkpoint(&note).unwrap(), checkpoint.clone());
        let mut edited = note.clone();
        for (kind, at, byte) in edits {
            edited = mutate(&edited, kind, at, byte);
        }
        if let Ok(opened) = key.open_checkpoint(&edited) {
            prop_assert_eq!(opened, checkpoint, "an edited note verified as another checkpoint: {:?}", edited);
        }
    }

    /// An inclusion proof verifies only as generated: any other index, size, leaf or path fails, and
    /// nothing panics, whatever the numbers.
    #[test]
    fn only_the_genuine_inclusion_proof_verifies(
        size in 1u64..300,
        index_seed in any::<u64>(),
        tweak in 0u8..6,
        at in any::<usize>(),
        extreme in prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(1u64 << 63), any::<u64>()],
    ) {
        let tree = tree(size);
        let root = tree.root();
        let index = index_seed % size;
        let leaf = merkle::leaf_hash(&index.to_be_bytes());
        let proof = merkle::inclusion_proof(&tree, index, size).unwrap();
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &root).is_ok());
        let mut bad: Vec<Hash> = proof.clone();
        let (mut index2, mut size2, mut leaf2) = (index, size, leaf);
        match tweak {
            0 if !bad.is_empty() => { let i = at % bad.len(); bad[i][0] ^= 1; }
            0 | 1 => bad.push([0u8; 32]),
            2 if !bad.is_empty() => { bad.pop(); }
            2 | 3 => leaf2[31] ^= 1,
            4 => index2 = extreme,
            _ => size2 = extreme,
        }
        let changed = (bad != proof) || index2 != index || size2 != size || leaf2 != leaf;
        prop_assume!(changed);
        prop_assert!(merkle::verify_inclusion(&leaf2, index2, size2, &bad, &root).is_err());
    }

    /// A consistency proof verifies only as generated, between the sizes it was made for.
    #[test]
    fn only_the_genuine_consistency_proof_verifies(
        second in 1u64..300,
        first_seed in any::<u64>(),
        tweak in 0u8..5,
        at in any::<usize>(),
        extreme in prop_oneof![Just(u64::MAX), Just(1u64 << 63), any::<u64>()],
    ) {
        let tree = tree(second);
        let first = 1 + first_seed % second;
        let (r1, r2) = (merkle::root(&tree, first).unwrap(), tree.root());
        let proof = merkle::consistency_proof(&tree, first, second).unwrap();
        prop_assert!(merkle::verify_consistency(first, second, &proof, &r1, &r2).is_ok());
        let mut bad = proof.clone();
        let (mut f2, mut s2) = (first, second);
        match tweak {
            0 if !bad.is_empty() => { let i = at % bad.len(); bad[i][5] ^= 0x80; }
            0 | 1 => bad.push([1u8; 32]),
            2 if !bad.is_empty() => { bad.remove(at % bad.len()); }
            2 | 3 => f2 = extreme,
            _ => s2 = extreme,
        }
        prop_assume!(bad != proof || f2 != first || s2 != second);
        prop_assert!(merkle::verify_consistency(f2, s2, &bad, &r1, &r2).is_err());
    }
}
