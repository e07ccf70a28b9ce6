//! Inclusion and consistency proofs for random tree sizes, checked against an independent, naive recursive
//! recomputation straight from the RFC 6962 definitions (MTH, PATH, SUBPROOF over the raw leaves), and
//! against the RFC 9162 verification algorithms.

use hazchem_verify::merkle::{self, Hash, MemoryTree};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn h(bytes: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for b in bytes {
        hasher.update(b);
    }
    hasher.finalize().into()
}

/// The largest power of two strictly below n, by counting.
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The definitions, over the raw leaves, with MTH memoised by range (the recursion visits the same
/// subtrees again and again).
struct Naive<'a> {
    d: &'a [Vec<u8>],
    cache: std::cell::RefCell<std::collections::HashMap<(usize, usize), Hash>>,
}

impl<'a> Naive<'a> {
    fn new(d: &'a [Vec<u8>]) -> Self {
        Naive {
            d,
            cache: Default::default(),
        }
    }

    /// MTH(D[lo:hi]).
    fn mth(&self, lo: usize, hi: usize) -> Hash {
        if let Some(h) = self.cache.borrow().get(&(lo, hi)) {
            return *h;
        }
        let hash = match hi - lo {
            0 => h(&[]),
            1 => h(&[&[0], &self.d[lo]]),
            n => {
                let k = k_of(n);
                h(&[&[1], &self.mth(lo, lo + k), &self.mth(lo + k, hi)])
            }
        };
        self.cache.borrow_mut().insert((lo, hi), hash);
        hash
    }

    /// PATH(m, D[lo:hi]).
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n == 1 {
            return vec![];
        }
        let k = k_of(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// SUBPROOF(m, D[lo:hi], b).
    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b { vec![] } else { vec![self.mth(lo, hi)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }
}

fn mth(d: &[Vec<u8>]) -> Hash {
    Naive::new(d).mth(0, d.len())
}

fn leaves(n: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("leaf {i} of {n} seed {seed}").into_bytes())
        .collect()
}

fn tree(d: &[Vec<u8>]) -> MemoryTree {
    MemoryTree::from_leaf_hashes(d.iter().map(|l| merkle::leaf_hash(l)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn inclusion_proofs_match_the_definition(n in 1usize..=300, pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let d = leaves(n, seed);
        let m = pick.index(n);
        let t = tree(&d);
        let root = mth(&d);
        prop_assert_eq!(t.root(), root);
        let proof = merkle::inclusion_proof(&t, m as u64, n as u64).unwrap();
        prop_assert_eq!(&proof, &Naive::new(&d).path(m, 0, n));
        prop_assert_eq!(proof.len(), merkle::inclusion_proof_len(m as u64, n as u64));
        let leaf = merkle::leaf_hash(&d[m]);
        prop_assert!(merkle::verify_inclusion(&leaf, m as u64, n as u64, &proof, &root).is_ok());
        // Another leaf, another index, a shorter or altered proof all fail.
        let other = merkle::leaf_hash(b"not a leaf");
        prop_assert!(merkle::verify_inclusion(&other, m as u64, n as u64, &proof, &root).is_err());
        if n > 1 {
            let wrong = ((m + 1) % n) as u64;
            prop_assert!(merkle::verify_inclusion(&leaf, wrong, n as u64, &proof, &root).is_err());
            let mut altered = proof.clone();
            altered[0][0] ^= 1;
            prop_assert!(merkle::verify_inclusion(&leaf, m as u64, n as u64, &altered, &root).is_err());
            prop_assert!(merkle::verify_inclusion(&leaf, m as u64, n as u64, &proof[1..], &root).is_err());
        }
        // The proof of an earlier tree size, from the same store.
        let size = (m + 1 + pick.index(n - m)) as u64;
        let earlier = merkle::inclusion_proof(&t, m as u64, size).unwrap();
        prop_assert_eq!(&earlier, &Naive::new(&d).path(m, 0, size as usize));
        prop_assert!(merkle::verify_inclusion(&leaf, m as u64, size, &earlier, &mth(&d[..size as usize])).is_ok());
    }

    #[test]
    fn consistency_proofs_match_the_definition(n in 1usize..=300, pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let d = leaves(n, seed);
        let m = 1 + pick.index(n);
        let t = tree(&d);
        let (first, second) = (mth(&d[..m]), mth(&d));
        let proof = merkle::consistency_proof(&t, m as u64, n as u64).unwrap();
        let expected = if m == n { vec![] } else { Naive::new(&d).subproof(m, 0, n, true) };
        prop_assert_eq!(&proof, &expected);
        prop_assert_eq!(proof.len(), merkle::consistency_proof_len(m as u64, n as u64));
        prop_assert!(merkle::verify_consistency(m as u64, n as u64, &proof, &first, &second).is_ok());
        if m < n {
            // A forked history: the same sizes, one earlier leaf changed.
            let mut forked = d.clone();
            forked[pick.index(m)] = b"rewritten".to_vec();
            let forked_first = mth(&forked[..m]);
            prop_assert!(merkle::verify_consistency(m as u64, n as u64, &proof, &forked_first, &second).is_err());
            let forked_proof = merkle::consistency_proof(&tree(&forked), m as u64, n as u64).unwrap();
            prop_assert!(merkle::verify_consistency(m as u64, n as u64, &forked_proof, &first, &mth(&forked)).is_err());
            let mut altered = proof.clone();
            let last = altered.len() - 1;
            altered[last][31] ^= 0x80;
            prop_assert!(merkle::verify_consistency(m as u64, n as u64, &altered, &first, &second).is_err());
            prop_assert!(merkle::verify_consistency(m as u64, n as u64, &proof[..last], &first, &second).is_err());
        }
    }
}

#[test]
fn every_pair_of_small_sizes_is_consistent() {
    let d = leaves(64, 7);
    let t = tree(&d);
    let naive = Naive::new(&d);
    let roots: Vec<Hash> = (0..=64).map(|n| naive.mth(0, n)).collect();
    for n in 1..=64usize {
        for m in 1..=n {
            let proof = merkle::consistency_proof(&t, m as u64, n as u64).unwrap();
            merkle::verify_consistency(m as u64, n as u64, &proof, &roots[m], &roots[n])
                .unwrap_or_else(|e| panic!("{m} → {n}: {e}"));
        }
        for (m, leaf) in d.iter().enumerate().take(n) {
            let proof = merkle::inclusion_proof(&t, m as u64, n as u64).unwrap();
            merkle::verify_inclusion(
                &merkle::leaf_hash(leaf),
                m as u64,
                n as u64,
                &proof,
                &roots[n],
            )
            .unwrap_or_else(|e| panic!("{m} in {n}: {e}"));
        }
    }
}
