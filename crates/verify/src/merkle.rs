//! The RFC 6962 / RFC 9162 Merkle tree: hashing, roots, proof generation from a store of perfect-subtree
//! hashes, and proof verification that needs nothing but hashes.
//!
//! # Hashes
//!
//! - leaf: `SHA-256(0x00 || data)`
//! - interior node: `SHA-256(0x01 || left || right)`
//! - the tree of `n > 1` leaves splits at `k`, the largest power of two strictly below `n`; the empty
//!   tree's root is `SHA-256("")`.
//!
//! # Node addressing
//!
//! A *perfect subtree* is addressed by `(level, index)`: it covers the `2^level` leaves
//! `[index·2^level, (index+1)·2^level)`. Level 0 holds the leaf hashes. Perfect subtrees never change once
//! their last leaf is appended, so a store of them ([`NodeSource`]) answers for every tree size up to its
//! own: any subtree the RFC's recursion visits is either perfect (one lookup) or lies on the right edge of
//! the tree, where it is recomputed from at most `log2(n)` perfect subtrees. Proofs therefore cost
//! `O(log² n)` lookups at worst and never `O(n)`.

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A store of perfect-subtree hashes (see the module documentation for the addressing).
///
/// The store's own error type carries its failures (a disk store has more ways to fail than a missing
/// hash); it must also take this crate's [`Error`], for the requests no tree can answer (a leaf beyond
/// the size, say).
pub trait NodeSource {
    /// What a lookup, or a proof built from lookups, fails with.
    type Error: From<Error>;

    /// The hash of the perfect subtree `(level, index)`; an error if the store does not hold it.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The hash of the leaves `[start, end)`, where the range is one the RFC recursion visits (its start is a
/// multiple of the smallest power of two at least as large as the range).
pub fn range_hash<S: NodeSource + ?Sized>(
    source: &S,
    start: u64,
    end: u64,
) -> Result<Hash, S::Error> {
    let n = end - start;
    debug_assert!(n >= 1);
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return source.node(n.trailing_zeros() as u8, start >> n.trailing_zeros());
    }
    let k = split(n);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root<S: NodeSource + ?Sized>(source: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        Ok(EMPTY_ROOT)
    } else {
        range_hash(source, 0, size)
    }
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1) of leaf `index` in the tree of `size` leaves,
/// deepest sibling first.
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if index >= size {
        return Err(
            Error::OutOfRange(format!("leaf {index} is not in a tree of size {size}")).into(),
        );
    }
    let mut path = Vec::new();
    let (mut m, mut start, mut end) = (index, 0, size);
    // Walk down from the root, collecting siblings; reversed at the end so the deepest comes first.
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            path.push(range_hash(source, start + k, end)?);
            end = start + k;
        } else {
            path.push(range_hash(source, start, start + k)?);
            start += k;
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof (RFC 9162 §2.1.4.1) between the trees of `first` and `second` leaves. Empty when
/// `first` is 0 or equal to `second`.
pub fn consistency_proof<S: NodeSource + ?Sized>(
    source: &S,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, S::Error> {
    if first > second {
        return Err(Error::OutOfRange(format!(
            "no consistency proof from size {first} to the smaller size {second}"
        ))
        .into());
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    // SUBPROOF(m, D[start:end], b), iteratively; siblings are appended on the way back up, so collect
    // them top-down and reverse.
    let (mut m, mut start, mut end, mut whole) = (first, 0, second, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                proof.push(range_hash(source, start, end)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            proof.push(range_hash(source, start + k, end)?);
            end = start + k;
        } else {
            proof.push(range_hash(source, start, start + k)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes, but sizes {first} and {second} need {expected}")]
    WrongLength {
        first: u64,
        second: u64,
        expected: usize,
        got: usize,
    },
    /// The sizes are not in order.
    #[error("tree size {second} is smaller than {first}")]
    SizesOutOfOrder { first: u64, second: u64 },
    /// The proof leads to a different root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch { computed: String, expected: String },
    /// The proof leads to a different earlier root (consistency proofs).
    #[error("the proof leads to earlier root {computed}, not {expected}")]
    FirstRootMismatch { computed: String, expected: String },
}

/// The root an inclusion proof leads to from `leaf` at `index` in a tree of `size` leaves (RFC 9162
/// §2.1.3.2 up to the final comparison); an error if the proof has the wrong length.
pub fn inclusion_root(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(wrong_length(index, size, proof.len()));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length(index, size, proof.len()));
    }
    Ok(r)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let r = inclusion_root(leaf, index, size, proof)?;
    if &r != root {
        return Err(ProofError::RootMismatch {
            computed: hex::encode(r),
            expected: hex::encode(root),
        });
    }
    Ok(())
}

/// The number of hashes in an inclusion proof of `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    // The verification loop below, counting the hashes it consumes.
    let (mut fn_, mut sn, mut len) = (index, size - 1, 0);
    while sn > 0 {
        len += 1;
        if fn_ & 1 == 0 && fn_ == sn {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    len
}

fn wrong_length(index: u64, size: u64, got: usize) -> ProofError {
    ProofError::WrongLength {
        first: index,
        second: size,
        expected: inclusion_proof_len(index, size),
        got,
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2) between the tree of `first` leaves with root
/// `first_root` and the tree of `second` leaves with root `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                first,
                second,
                expected: 0,
                got: proof.len(),
            });
        }
        if first_root != second_root {
            return Err(ProofError::RootMismatch {
                computed: hex::encode(first_root),
                expected: hex::encode(second_root),
            });
        }
        return Ok(());
    }
    if first == 0 {
        // Every tree extends the empty tree; the proof is empty.
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                first,
                second,
                expected: 0,
                got: proof.len(),
            });
        }
        return Ok(());
    }
    let bad_length = || ProofError::WrongLength {
        first,
        second,
        expected: consistency_proof_len(first, second),
        got: proof.len(),
    };
    if proof.is_empty() {
        return Err(bad_length());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(bad_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad_length());
    }
    if &fr != first_root {
        return Err(ProofError::FirstRootMismatch {
            computed: hex::encode(fr),
            expected: hex::encode(first_root),
        });
    }
    if &sr != second_root {
        return Err(ProofError::RootMismatch {
            computed: hex::encode(sr),
            expected: hex::encode(second_root),
        });
    }
    Ok(())
}

/// The number of hashes in a consistency proof between sizes `first` and `second` (`0 < first < second`).
pub fn consistency_proof_len(first: u64, second: u64) -> usize {
    if first == 0 || first >= second {
        return 0;
    }
    let (mut m, mut n, mut whole, mut len) = (first, second, true, 0);
    loop {
        if m == n {
            if !whole {
                len += 1;
            }
            return len;
        }
        let k = split(n);
        len += 1;
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
    }
}

/// The right edge of a growing tree: the roots of the perfect subtrees that make up `[0, size)`, largest
/// first. Appending costs amortised O(1) hashes; the root costs O(log n). This is all the verifier needs to
/// recompute a root over a stream of leaves, in O(log n) memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)`, levels strictly decreasing.
    nodes: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the first `size` leaves, read from a node store.
    pub fn from_source<S: NodeSource + ?Sized>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut nodes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                nodes.push((level, source.node(level, start >> level)?));
                start += 1 << level;
            }
        }
        Ok(Frontier { size, nodes })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; calls `completed(level, index, hash)` for every perfect subtree it completes,
    /// the leaf itself (level 0) included, in increasing level.
    pub fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, &Hash)) {
        let index = self.size;
        completed(0, index, &leaf);
        let mut level = 0u8;
        let mut hash = leaf;
        while let Some(&(top_level, top)) = self.nodes.last() {
            if top_level != level {
                break;
            }
            self.nodes.pop();
            hash = node_hash(&top, &hash);
            level += 1;
            completed(level, index >> level, &hash);
        }
        self.nodes.push((level, hash));
        self.size += 1;
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _, _| {});
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return EMPTY_ROOT;
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Every perfect-subtree hash of a tree, in memory (`2n` hashes for `n` leaves). Used by tests, the
/// benchmark and the verifier when it must locate a disagreement.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaf hashes.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.frontier.push_with(leaf, |level, index, hash| {
            let level = level as usize;
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            debug_assert_eq!(levels[level].len() as u64, index);
            levels[level].push(*hash);
        });
    }

    /// Appends a leaf's data.
    pub fn push_leaf(&mut self, data: &[u8]) {
        self.push(leaf_hash(data));
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root over every leaf.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }
}

impl NodeSource for MemoryTree {
    type Error = Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Error> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(Error::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 MTH, directly from the definition.
    fn naive_root(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
    }

    #[test]
    fn frontier_and_memory_tree_agree_with_the_definition() {
        let leaves: Vec<Vec<u8>> = (0..70u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut tree = MemoryTree::new();
        for n in 0..=leaves.len() {
            assert_eq!(tree.root(), naive_root(&leaves[..n]), "size {n}");
            assert_eq!(root(&tree, n as u64).unwrap(), naive_root(&leaves[..n]));
            let f = Frontier::from_source(&tree, n as u64).unwrap();
            assert_eq!(f.root(), naive_root(&leaves[..n]));
            if n < leaves.len() {
                tree.push_leaf(&leaves[n]);
            }
        }
        // Roots of every earlier size from the full store.
        for n in 0..=leaves.len() {
            assert_eq!(root(&tree, n as u64).unwrap(), naive_root(&leaves[..n]));
        }
    }

    #[test]
    fn proof_lengths_match_generated_proofs() {
        let tree = MemoryTree::from_leaf_hashes((0..40u32).map(|i| leaf_hash(&i.to_be_bytes())));
        for n in 1..=40u64 {
            for m in 0..n {
                assert_eq!(
                    inclusion_proof(&tree, m, n).unwrap().len(),
                    inclusion_proof_len(m, n),
                    "inclusion {m} of {n}"
                );
            }
            for m in 1..n {
                assert_eq!(
                    consistency_proof(&tree, m, n).unwrap().len(),
                    consistency_proof_len(m, n),
                    "consistency {m} to {n}"
                );
            }
        }
    }

    #[test]
    fn a_proof_for_one_leaf_fails_for_another() {
        let tree = MemoryTree::from_leaf_hashes((0..13u32).map(|i| leaf_hash(&i.to_be_bytes())));
        let root = tree.root();
        let proof = inclusion_proof(&tree, 5, 13).unwrap();
        verify_inclusion(&tree.leaves()[5], 5, 13, &proof, &root).unwrap();
        assert!(verify_inclusion(&tree.leaves()[6], 5, 13, &proof, &root).is_err());
        assert!(verify_inclusion(&tree.leaves()[5], 6, 13, &proof, &root).is_err());
        assert!(verify_inclusion(&tree.leaves()[5], 5, 17, &proof, &root).is_err());
        assert!(verify_inclusion(&tree.leaves()[5], 5, 13, &proof[1..], &root).is_err());
        assert!(matches!(
            verify_inclusion(&tree.leaves()[5], 13, 13, &proof, &root),
            Err(ProofError::IndexOutOfRange { .. })
        ));
    }
}
