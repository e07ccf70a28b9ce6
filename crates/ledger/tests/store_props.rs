//! The ledger's sled store against the definition: after any sequence of batches, with the store closed
//! and opened again at random points, the root of every prefix it answers equals the RFC 6962 Merkle
//! tree hash computed naively from the leaves (MTH of section 2.1, by recursion), and the frontier it
//! reopens with is the one it was appending with.

use hazchem_ledger::merkle::{self, Frontier, Hash};
use hazchem_ledger::store::{Append, LedgerStore, StoreState};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

/// MTH(D[n]) by the definition: the largest power of two below n splits the leaves.
fn naive_root(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => Sha256::new()
            .chain_update([0u8])
            .chain_update(&leaves[0])
            .finalize()
            .into(),
        n => {
            // The largest power of two smaller than n: the highest bit of n - 1.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            Sha256::new()
                .chain_update([1u8])
                .chain_update(naive_root(&leaves[..k]))
                .chain_update(naive_root(&leaves[k..]))
                .finalize()
                .into()
        }
    }
}

fn append(
    store: &LedgerStore,
    frontier: &mut Frontier,
    state: &mut StoreState,
    records: &[Vec<u8>],
) {
    let from = frontier.size();
    let ids: Vec<String> = (from..from + records.len() as u64)
        .map(|i| format!("ev-{i}"))
        .collect();
    let items: Vec<Append<'_>> = records
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(k, (record, id))| Append {
            sequence: from + k as u64 + 1,
            publisher: "transport",
            id,
            record,
            foreign: true,
            checkpoint: None,
        })
        .collect();
    store.append(frontier, state, &items).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn every_prefix_root_is_the_definitions(
        batches in prop::collection::vec(
            (prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 1..30), any::<bool>()),
            1..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LedgerStore::open(dir.path()).unwrap();
        let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        for (records, reopen) in batches {
            append(&store, &mut frontier, &mut state, &records);
            leaves.extend(records);
            if reopen {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(store.flush()).unwrap();
                drop(store);
                store = LedgerStore::open(dir.path()).unwrap();
                prop_assert_eq!(store.state().unwrap(), state);
                prop_assert_eq!(&Frontier::from_source(&store, state.size).unwrap(), &frontier);
            }
            prop_assert_eq!(frontier.root(), naive_root(&leaves));
            prop_assert_eq!(merkle::root(&store, state.size).unwrap(), naive_root(&leaves));
        }
        for n in 0..=leaves.len() {
            prop_assert_eq!(
                merkle::root(&store, n as u64).unwrap(),
                naive_root(&leaves[..n]),
                "prefix {}", n
            );
        }
    }
}
