//! Witnesses answer C2SP tlog-witness `add-checkpoint` requests: they cosign an honest, growing log, and
//! refuse a forked one (two different checkpoints of the same size signed by the log's key) with the
//! protocol's statuses (409 Conflict, 422 for a proof that does not hold, 400 for a rollback), also after
//! a restart from their state files.

use hazchem_verify::ed25519_dalek::SigningKey;
use hazchem_verify::merkle::{self, MemoryTree};
use hazchem_verify::note::{Checkpoint, DEFAULT_ORIGIN, NoteSigner};
use hazchem_verify::verify_cosignatures;
use hazchem_verify::witness::{
    AddCheckpoint, Cosigner, Refusal, Witness, WitnessKey, add_cosignatures,
};

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

/// `add-checkpoint` of `note` from old size `old`, with `proof`, through its wire form.
fn add(
    w: &mut Witness,
    note: &str,
    old: u64,
    proof: Vec<[u8; 32]>,
    time: u64,
) -> Result<String, Refusal> {
    let request = AddCheckpoint {
        old,
        proof,
        note: note.to_owned(),
    };
    let parsed = AddCheckpoint::parse(&request.to_body()).unwrap();
    assert_eq!(parsed, request);
    w.add_checkpoint(&parsed, time)
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
                add(w, &note, last, proof(&t, last, size), 1_700_000_000 + size)
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
    add(
        &mut restarted,
        &checkpoint(&t, 120),
        100,
        proof(&t, 100, 120),
        T,
    )
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
                add(w, &a, 0, vec![], T).unwrap();
            }
            3..6 => {
                add(w, &b, 0, vec![], T).unwrap();
            }
            _ => {
                add(w, &checkpoint(&honest, 10), 0, vec![], T).unwrap();
                add(w, &checkpoint(&honest, 40), 10, proof(&honest, 10, 40), T).unwrap();
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
            let seen = w.last(DEFAULT_ORIGIN).unwrap().size;
            // As a submitter would: first with no idea of the witness's size, which answers 409 with it.
            let err = add(w, other, 0, vec![], T).unwrap_err();
            assert_eq!(
                err,
                Refusal::Conflict {
                    old: 0,
                    recorded: seen
                },
                "{i}"
            );
            assert_eq!((err.status(), err.recorded_size()), (409, Some(seen)));
            // Then from that size.
            let err = add(w, other, seen, vec![], T).unwrap_err();
            match i {
                // The other branch at the size it cosigned: a fork, 409.
                0..6 => {
                    assert!(matches!(err, Refusal::Fork { size: 30, .. }), "{i}: {err}");
                    assert_eq!(err.status(), 409);
                }
                // It cosigned 40: a checkpoint of 30 is a rollback, 400.
                _ => {
                    assert_eq!(err, Refusal::OldTooLarge { old: 40, size: 30 }, "{i}");
                    assert_eq!(err.status(), 400);
                }
            }
            assert!(err.to_string().contains("30"), "{err}");
            // Nor does it cosign the other branch grown further, with that branch's proof: 422.
            let grown = branch(std::ptr::eq(other_tree, &forked), 45);
            let err =
                add(w, &checkpoint(&grown, 45), seen, proof(&grown, seen, 45), T).unwrap_err();
            assert!(matches!(err, Refusal::Inconsistent { .. }), "{i}: {err}");
            assert_eq!(err.status(), 422);
        }
    };
    check(&mut witnesses);
    // A restarted witness (state reloaded from its file) still refuses.
    drop(witnesses);
    let mut restarted: Vec<Witness> = (0..9).map(|i| witness(i, dir.path())).collect();
    check(&mut restarted);
    // And still cosigns its own branch.
    add(
        &mut restarted[0],
        &checkpoint(&honest, 40),
        30,
        proof(&honest, 30, 40),
        T,
    )
    .unwrap();
    add(
        &mut restarted[3],
        &checkpoint(&forked, 40),
        30,
        proof(&forked, 30, 40),
        T,
    )
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
    let err = add(&mut w, &forged, 0, vec![], T).unwrap_err();
    assert!(matches!(err, Refusal::BadSignature(_)), "{err}");
    assert_eq!(err.status(), 403);
    // Another log.
    let other = NoteSigner::new("other.example/log", SigningKey::from_bytes(&[1; 32]))
        .unwrap()
        .sign_checkpoint(&Checkpoint {
            origin: "other.example/log".into(),
            size: 10,
            root: [0; 32],
        });
    let err = add(&mut w, &other, 0, vec![], T).unwrap_err();
    assert!(matches!(err, Refusal::UnknownLog { .. }), "{err}");
    assert_eq!(err.status(), 404);
    // A proof from the empty tree.
    let err = add(&mut w, &checkpoint(&t, 5), 0, proof(&t, 2, 5), T).unwrap_err();
    assert_eq!(err.status(), 422, "{err}");
    // A wrong proof.
    add(&mut w, &checkpoint(&t, 5), 0, vec![], T).unwrap();
    let err = add(&mut w, &checkpoint(&t, 10), 5, proof(&t, 4, 10), T).unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Inconsistent {
                old: 5,
                size: 10,
                ..
            }
        ),
        "{err}"
    );
    // An old size beyond the checkpoint.
    let err = add(&mut w, &checkpoint(&t, 5), 10, vec![], T).unwrap_err();
    assert_eq!(err, Refusal::OldTooLarge { old: 10, size: 5 });
    // Not a checkpoint at all.
    let err = add(&mut w, "hello\n", 5, vec![], T).unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    // Refusals do not move the witness.
    assert_eq!(w.last(DEFAULT_ORIGIN).unwrap().size, 5);
}

#[test]
fn malformed_request_bodies_are_400() {
    let note = checkpoint(&tree("honest", 3), 3);
    for body in [
        String::new(),
        "old 1".to_owned(),
        format!("old 01\n\n{note}"),
        format!("old -1\n\n{note}"),
        format!("old 99999999999999999999\n\n{note}"),
        format!("new 1\n\n{note}"),
        format!("old 1\nnot base64!\n\n{note}"),
        format!("old 1\nAAAA\n\n{note}"),
        format!(
            "old 1\n{}",
            "ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g=\n".repeat(64) + "\n" + &note
        ),
        "old 1\nZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g=".to_owned(),
    ] {
        let err = AddCheckpoint::parse(&body).unwrap_err();
        assert!(matches!(err, Refusal::Malformed(_)), "{body:?}: {err}");
        assert_eq!(err.status(), 400);
    }
    // The example of the specification's shape: old size, proof lines, empty line, note.
    let parsed = AddCheckpoint::parse(&format!("old 0\n\n{note}")).unwrap();
    assert_eq!(
        (parsed.old, parsed.proof.len(), parsed.note.as_str()),
        (0, 0, note.as_str())
    );
}
