//! The RFC 6962 test vectors (the Certificate Transparency leaves and roots), checked against every way
//! the ledger computes a root: the in-memory tree, the streaming frontier, and the sled store.

use hazchem_ledger::merkle::{self, Frontier, MemoryTree};
use hazchem_ledger::store::{Append, LedgerStore, StoreState};

struct Vectors {
    leaves: Vec<Vec<u8>>,
    roots: Vec<(u64, [u8; 32])>,
}

fn vectors() -> Vectors {
    let text = include_str!("vectors/merkle-vectors.json");
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
fn every_published_root_is_reproduced_in_memory() {
    let v = vectors();
    assert_eq!(v.roots.len(), 9, "roots for sizes 0 to 8");
    for (n, expected) in &v.roots {
        let tree = MemoryTree::from_leaf_hashes(
            v.leaves[..*n as usize].iter().map(|l| merkle::leaf_hash(l)),
        );
        assert_eq!(tree.root(), *expected, "MemoryTree root of {n} leaves");
        let mut frontier = Frontier::new();
        for leaf in &v.leaves[..*n as usize] {
            frontier.push(merkle::leaf_hash(leaf));
        }
        assert_eq!(frontier.root(), *expected, "Frontier root of {n} leaves");
    }
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

#[test]
fn the_empty_tree_is_the_hash_of_nothing() {
    let v = vectors();
    assert_eq!(v.roots[0], (0, merkle::EMPTY_ROOT));
    assert_eq!(Frontier::new().root(), merkle::EMPTY_ROOT);
}
