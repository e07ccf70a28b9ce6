//! The RFC 6962 test vectors (the Certificate Transparency leaves and roots), checked against the sled
//! store. The vectors live with the verifier (`crates/verify/tests/vectors`), whose own tests check them
//! against the in-memory tree and the streaming frontier.

use hazchem_ledger::merkle::{self, Frontier};
use hazchem_ledger::store::{Append, LedgerStore, StoreState};

struct Vectors {
    leaves: Vec<Vec<u8>>,
    roots: Vec<(u64, [u8; 32])>,
}

fn vectors() -> Vectors {
    let text = include_str!("../../verify/tests/vectors/merkle-vectors.json");
    let json: serde_json::Value = serde_json::from_str(text).expect("vectors are JSON");
    let leaves = json["leaves"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|l| hex::decode(l.as_str().expect("hex leaf")).expect("hex"))
        .collect();
    let mut roots: Vec<(u64, [u8; 32])> = json["roots"]
        .as_object()
        .expect("roots")
        .iter()
        .map(|(n, r)| {
            let root: [u8; 32] = hex::decode(r.as_str().expect("hex root"))
                .expect("hex")
                .try_into()
                .expect("32 bytes");
            (n.parse().expect("size"), root)
        })
        .collect();
    roots.sort();
    Vectors { leaves, roots }
}

#[test]
fn every_published_root_is_reproduced_from_the_sled_store() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let store = LedgerStore::open(dir.path()).unwrap();
    let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
    let ids: Vec<String> = (0..v.leaves.len()).map(|i| format!("vector-{i}")).collect();
    // Appended in two batches, so that the second batch completes subtrees begun in the first.
    for range in [0..3, 3..v.leaves.len()] {
        let items: Vec<Append<'_>> = range
            .map(|i| Append {
                sequence: i as u64 + 1,
                publisher: "psb",
                id: &ids[i],
                record: &v.leaves[i],
                foreign: true,
                checkpoint: None,
            })
            .collect();
        store.append(&mut frontier, &mut state, &items).unwrap();
    }
    for (n, expected) in &v.roots {
        assert_eq!(
            merkle::root(&store, *n).unwrap(),
            *expected,
            "stored root of {n} leaves"
        );
    }
    store.deep_check(v.leaves.len() as u64).unwrap();
}
