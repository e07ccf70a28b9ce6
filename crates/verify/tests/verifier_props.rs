//! Property tests of the offline verifier: a bundle verifies exactly when its records are the honest ones,
//! whatever a forger does to the lines (deletions, repeats, swaps, renumbering, out-of-range and extreme
//! indexes, extra and malformed lines, altered bytes), and the Merkle root after random batches equals a
//! naive recursive tree's.

#![allow(clippy::disallowed_methods)] // tests: a bundle's createdAt is descriptive

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hazchem_verify::bundle::{self, BundleRecord, BundleWriter};
use hazchem_verify::ed25519_dalek::SigningKey;
use hazchem_verify::merkle::{self, Frontier, Hash, MemoryTree};
use hazchem_verify::note::{Checkpoint, NoteSigner};
use proptest::prelude::*;

const ORIGIN: &str = "hazchem.example/ledger";

/// One way of editing the honest lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Repeat(usize),
    Swap(usize, usize),
    SetIndex(usize, u64),
    SwapBytes(usize, usize),
    FlipByte(usize, usize),
    Extra(u64),
    Malformed(usize, String),
    Blank(usize),
    RenumberAll,
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1u64 << 63),
        0u64..64,
        any::<u64>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Repeat),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (any::<usize>(), index.clone()).prop_map(|(a, i)| Edit::SetIndex(a, i)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapBytes(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::FlipByte(a, b)),
        index.prop_map(Edit::Extra),
        (
            any::<usize>(),
            prop_oneof![
                Just("{}".to_owned()),
                Just(r#"{"index":-1,"record":""}"#.to_owned()),
                Just(r#"{"index":0,"record":"!!"}"#.to_owned()),
                Just(r#"{"index":0,"record":"","proof":["AA=="]}"#.to_owned()),
                "[ -~]{0,40}",
            ]
        )
            .prop_map(|(a, l)| Edit::Malformed(a, l)),
        any::<usize>().prop_map(Edit::Blank),
        Just(Edit::RenumberAll),
    ]
}

fn leaf(i: u64, salt: u8) -> Vec<u8> {
    let mut bytes = format!("record {i}").into_bytes();
    bytes.push(salt);
    bytes
}

/// Applies `edit` to parsed lines (`Err` is a raw line that is not a record).
fn apply(lines: &mut Vec<Result<BundleRecord, String>>, edit: &Edit) {
    let n = lines.len();
    match edit.clone() {
        Edit::Delete(a) if n > 0 => {
            let _deleted = lines.remove(a % n);
        }
        Edit::Repeat(a) if n > 0 => {
            let line = lines[a % n].clone();
            lines.insert(a % n, line);
        }
        Edit::Swap(a, b) if n > 0 => lines.swap(a % n, b % n),
        Edit::SetIndex(a, index) if n > 0 => {
            if let Ok(r) = &mut lines[a % n] {
                r.index = index;
            }
        }
        Edit::SwapBytes(a, b) if n > 0 => {
            let (a, b) = (a % n, b % n);
            if let (Ok(x), Ok(y)) = (lines[a].clone(), lines[b].clone()) {
                lines[a].as_mut().unwrap().record = y.record;
                lines[b].as_mut().unwrap().record = x.record;
            }
        }
        Edit::FlipByte(a, at) if n > 0 => {
            if let Ok(r) = &mut lines[a % n]
                && !r.record.is_empty()
            {
                let at = at % r.record.len();
                r.record[at] ^= 1;
            }
        }
        Edit::Extra(index) => lines.push(Ok(BundleRecord {
            index,
            record: leaf(index, 9),
            proof: None,
        })),
        Edit::Malformed(a, line) => lines.insert(a % (n + 1), Err(line)),
        Edit::Blank(a) => lines.insert(a % (n + 1), Err(String::new())),
        Edit::RenumberAll => {
            for (i, line) in lines.iter_mut().enumerate() {
                if let Ok(r) = line {
                    r.index = i as u64;
                }
            }
        }
        _ => {}
    }
}

fn write_lines(dir: &Path, lines: &[Result<BundleRecord, String>]) {
    let text: String = lines
        .iter()
        .map(|l| match l {
            Ok(r) => {
                format!(
                    r#"{{"index":{},"record":"{}"{}}}"#,
                    r.index,
                    BASE64.encode(&r.record),
                    match &r.proof {
                        Some(p) => format!(
                            r#","proof":[{}]"#,
                            p.iter()
                                .map(|h| format!("\"{}\"", BASE64.encode(h)))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        None => String::new(),
                    }
                ) + "\n"
            }
            Err(raw) => format!("{raw}\n"),
        })
        .collect();
    std::fs::write(dir.join(bundle::RECORDS), text).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The verifier accepts a bundle exactly when its lines, read back, are the honest records.
    #[test]
    fn a_bundle_verifies_exactly_when_it_is_the_honest_one(
        n in 0u64..40,
        proofs in any::<bool>(),
        edits in proptest::collection::vec(edit(), 0..4),
    ) {
        let signer = NoteSigner::new(ORIGIN, SigningKey::generate(&mut rand::rngs::OsRng)).unwrap();
        let records: Vec<Vec<u8>> = (0..n).map(|i| leaf(i, 0)).collect();
        let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
        let honest: Vec<Result<BundleRecord, String>> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Ok(BundleRecord {
                index: i as u64,
                record: r.clone(),
                proof: proofs.then(|| merkle::inclusion_proof(&tree, i as u64, n).unwrap()),
            }))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let writer = BundleWriter::create(&path).unwrap();
        let note = signer.sign_checkpoint(&Checkpoint {
            origin: ORIGIN.into(),
            size: n,
            root: merkle::root(&tree, n).unwrap(),
        });
        writer.finish(&note, None, None, chrono::Utc::now()).unwrap();
        let mut lines = honest.clone();
        for e in &edits {
            apply(&mut lines, e);
        }
        write_lines(&path, &lines);
        // What a reader makes of the lines: the honest ones exactly when each parses back to its honest
        // record.
        let read_back: Vec<Result<BundleRecord, String>> = std::fs::read_to_string(path.join(bundle::RECORDS))
            .unwrap()
            .lines()
            .map(BundleRecord::from_line)
            .collect();
        let is_honest = read_back.len() == honest.len()
            && read_back.iter().zip(&honest).all(|(a, b)| a.is_ok() && a == b);
        let verdict = bundle::verify_bundle(&path, signer.verifier(), &Default::default());
        prop_assert_eq!(verdict.is_ok(), is_honest, "edits {:?}: {:?}", edits, verdict);
        if let Err(failure) = verdict {
            // A failure always names a problem, and the first one a leaf when a record is at fault.
            prop_assert!(!failure.problems.is_empty());
        }
    }

    /// The incremental root after random batches equals a naive recursive RFC 6962 tree's, at every size.
    #[test]
    fn the_root_after_random_batches_equals_a_naive_trees(
        batches in proptest::collection::vec(1usize..20, 0..12),
    ) {
        let mut frontier = Frontier::new();
        let mut leaves: Vec<Hash> = Vec::new();
        let mut i = 0u64;
        for batch in batches {
            for _ in 0..batch {
                let h = merkle::leaf_hash(&leaf(i, 0));
                frontier.push(h);
                leaves.push(h);
                i += 1;
            }
            prop_assert_eq!(frontier.root(), naive_root(&leaves));
        }
    }
}

/// RFC 6962 §2.1, written as the definition reads.
fn naive_root(leaves: &[Hash]) -> Hash {
    use sha2::{Digest, Sha256};
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            let mut hasher = Sha256::new();
            hasher.update([1u8]);
            hasher.update(naive_root(&leaves[..k]));
            hasher.update(naive_root(&leaves[k..]));
            hasher.finalize().into()
        }
    }
}
