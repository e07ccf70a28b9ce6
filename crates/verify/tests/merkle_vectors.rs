//! The RFC 6962 test vectors (the Certificate Transparency leaves and roots), checked against the ways
//! this crate computes a root: the in-memory tree and the streaming frontier. (`hazchem-ledger`'s
//! `tests/merkle_vectors.rs` checks the same vectors against its sled store.)

use hazchem_verify::merkle::{self, Frontier, MemoryTree};

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
fn the_empty_tree_is_the_hash_of_nothing() {
    let v = vectors();
    assert_eq!(v.roots[0], (0, merkle::EMPTY_ROOT));
    assert_eq!(Frontier::new().root(), merkle::EMPTY_ROOT);
}
