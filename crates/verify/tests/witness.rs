//! Witnesses cosign an honest, growing log, and refuse a forked one (two different checkpoints of the same
//! size signed by the log's key), also after a restart from their state files.

use hazchem_verify::ed25519_dalek::SigningKey;
use hazchem_verify::merkle::{self, MemoryTree};
use hazchem_verify::note::{Checkpoint, DEFAULT_ORIGIN, NoteSigner};
use hazchem_verify::verify_cosignatures;
use hazchem_verify::witness::{Cosigner, Refusal, Witness, WitnessKey, add_cosignatures};

const T: u64 = 1_700_000_000;

fn log_signer() -> NoteSigner {
    NoteSigner::new(DEFAULT_ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap()
}

fn witness(i: u8, dir: &std::path::Path) -> Witness {
    Witness::new(
        Cosigner::new(
            &format!("hazchem.example/witness/{i}"),
            SigningKey::from_bytes(&[100 + i; 32]),
        )
        .unwrap(),
        vec![log_signer().verifier()],
        Some(dir.join(format!("witness-{i}.json"))),
    )
    .unwrap()
}

fn tree(prefix: &str, n: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push_leaf(format!("{prefix}-{i}").as_bytes());
    }
    t
}

/// The first 30 leaves of the honest (or forked) branch, then more.
fn branch(forked: bool, n: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in 0..n {
        let leaf = match l {
            0..20 => format!("honest-{l}"),
            20..30 if forked => format!("forged-{l}"),
            20..30 => format!("honest-{l}"),
            _ => format!("more-{l}"),
        };
        t.push_leaf(leaf.as_bytes());
    }
    t
}

fn checkpoint(t: &MemoryTree, size: u64) -> String {
    log_signer().sign_checkpoint(&Checkpoint {
        origin: DEFAULT_ORIGIN.into(),
        size,
        root: merkle::root(t, size).unwrap(),
    })
}

fn proof(t: &MemoryTree, from: u64, to: u64) -> Vec<[u8; 32]> {
    if from == 0 || from == to {
        return Vec::new();
    }
    merkle::consistency_proof(t, from, to).unwrap()
}

#[test]
fn an_honest_growing_log_is_cosigned_by_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut witnesses: Vec<Witness> = (0..9).map(|i| witness(i, dir.path())).collect();
    let keys: Vec<WitnessKey> = witnesses.iter().map(Witness::key).collect();
    let t = tree("honest", 100);
    let mut last = 0;
    for size in [1, 2, 3, 7, 8, 9, 16, 17, 50, 50, 64, 99, 100] {
        let note = checkpoint(&t, size);
        let lines: Vec<String> = witnesses
            .iter_mut()
            .map(|w| {
                w.add_checkpoint(&note, &proof(&t, last, size), 1_700_000_000 + size)
                    .unwrap_or_else(|e| panic!("size {size}: {e}"))
            })
            .collect();
        let cosigned = add_cosignatures(&note, &lines);
        let good = verify_cosignatures(&cosigned, &keys).unwrap();
        assert_eq!(good.len(), 9, "size {size}");
        assert!(good.iter().all(|c| c.time == 1_700_000_000 + size));
        last = size;
    }
    // Restarted, they go on from their files.
    let mut restarted = witness(0, dir.path());
    assert_eq!(restarted.last(DEFAULT_ORIGIN).unwrap().size, 100);
    let t = tree("honest", 120);
    restarted
        .add_checkpoint(&checkpoint(&t, 120), &proof(&t, 100, 120), T)
        .unwrap();
}

#[test]
fn a_forked_log_is_refused_by_every_witness_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let honest = tree("honest", 40);
    let mut forked = tree("honest", 20);
    for i in 20..40 {
        forked.push_leaf(format!("forged-{i}").as_bytes());
    }
    let a = checkpoint(&honest, 30);
    let b = checkpoint(&forked, 30);
    assert_ne!(a, b);

    // Witnesses 0..3 cosigned the honest checkpoint of size 30, 3..6 the forked one, 6..9 a later
    // honest checkpoint (size 40) after one of size 10.
    let mut witnesses: Vec<Witness> = (0..9).map(|i| witness(i, dir.path())).collect();
    for (i, w) in witnesses.iter_mut().enumerate() {
        match i {
            0..3 => {
                w.add_checkpoint(&a, &[], T).unwrap();
            }
            3..6 => {
                w.add_checkpoint(&b, &[], T).unwrap();
            }
            _ => {
                w.add_checkpoint(&checkpoint(&honest, 10), &[], T).unwrap();
                w.add_checkpoint(&checkpoint(&honest, 40), &proof(&honest, 10, 40), T)
                    .unwrap();
            }
        }
    }
    let check = |witnesses: &mut [Witness]| {
        for (i, w) in witnesses.iter_mut().enumerate() {
            let (other, other_tree) = match i {
                0..3 => (&b, &forked),
                3..6 => (&a, &honest),
                _ => (&b, &forked),
            };
            let err = w.add_checkpoint(other, &[], T).unwrap_err();
            match i {
                0..6 => assert!(matches!(err, Refusal::Fork { size: 30, .. }), "{i}: {err}"),
                _ => assert!(
                    matches!(err, Refusal::Rollback { seen: 40, size: 30 }),
                    "{i}: {err}"
                ),
            }
            assert!(err.to_string().contains("30"), "{err}");
            // Nor does it cosign the other branch grown further, with that branch's proof.
            let grown = branch(std::ptr::eq(other_tree, &forked), 45);
            let seen = w.last(DEFAULT_ORIGIN).unwrap().size;
            let err = w
                .add_checkpoint(&checkpoint(&grown, 45), &proof(&grown, seen, 45), T)
                .unwrap_err();
            assert!(matches!(err, Refusal::Inconsistent { .. }), "{i}: {err}");
        }
    };
    check(&mut witnesses);
    // A restarted witness (state reloaded from its file) still refuses.
    drop(witnesses);
    let mut restarted: Vec<Witness> = (0..9).map(|i| witness(i, dir.path())).collect();
    check(&mut restarted);
    // And still cosigns its own branch.
    restarted[0]
        .add_checkpoint(&checkpoint(&honest, 40), &proof(&honest, 30, 40), T)
        .unwrap();
    restarted[3]
        .add_checkpoint(&checkpoint(&forked, 40), &proof(&forked, 30, 40), T)
        .unwrap();
}

#[test]
fn other_refusals_name_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = witness(0, dir.path());
    let t = tree("honest", 10);
    // Signed by another key.
    let forged = NoteSigner::new(DEFAULT_ORIGIN, SigningKey::from_bytes(&[9; 32]))
        .unwrap()
        .sign_checkpoint(&Checkpoint {
            origin: DEFAULT_ORIGIN.into(),
            size: 10,
            root: merkle::root(&t, 10).unwrap(),
        });
    assert!(matches!(
        w.add_checkpoint(&forged, &[], T),
        Err(Refusal::BadNote(_))
    ));
    // Another log.
    let other = NoteSigner::new("other.example/log", SigningKey::from_bytes(&[1; 32]))
        .unwrap()
        .sign_checkpoint(&Checkpoint {
            origin: "other.example/log".into(),
            size: 10,
            root: [0; 32],
        });
    assert!(matches!(
        w.add_checkpoint(&other, &[], T),
        Err(Refusal::UnknownLog { .. })
    ));
    // A wrong proof.
    w.add_checkpoint(&checkpoint(&t, 5), &[], T).unwrap();
    let err = w
        .add_checkpoint(&checkpoint(&t, 10), &proof(&t, 4, 10), T)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Inconsistent {
                seen: 5,
                size: 10,
                ..
            }
        ),
        "{err}"
    );
    // Refusals do not move the witness.
    assert_eq!(w.last(DEFAULT_ORIGIN).unwrap().size, 5);
}
