//! The ledger's throughput: durable append, proof generation, verification. Prints a table.
//!
//! ```text
//! cargo bench -p hazchem-ledger --bench ledger                       # 200 000 leaves
//! LEDGER_BENCH_LEAVES=1000000 cargo bench -p hazchem-ledger --bench ledger
//! ```
//!
//! Method (see docs/LEDGER.md): records are realistic encoded `hazchem.v1.Record`s (a transport waybill
//! fixture, ~1 KiB); every figure is wall-clock time of the whole operation divided by its count, on the
//! release profile, one run each.
//!
//! - **append (store)**: `LedgerStore::append` of batches of B records (leaf bytes, perfect-subtree hashes,
//!   id entry, cursor in one sled batch) followed by a flush per batch: durable events/s.
//! - **ingest (end to end)**: the ledger consuming a pre-filled embedded bus from sequence 1 (bus read,
//!   duplicate-id check, checkpoint detection, append, flush per batch of up to `max_batch`), until its
//!   durable size reaches the stream's.
//! - **inclusion / consistency proofs**: generated from the sled store for random leaves (or random first
//!   sizes) against the full tree size: proofs/s.
//! - **verify**: `Verifier` over every record (leaf hash + incremental root) against a signed checkpoint,
//!   as `audit verify` does after the replay: records/s; and `verify_bundle` over a bundle on disk with an
//!   inclusion proof per record.

#![allow(clippy::disallowed_methods)] // benchmark: a bundle's createdAt is descriptive

use std::time::{Duration, Instant};

use hazchem_ledger::bundle::{BundleRecord, BundleWriter, verify_bundle};
use hazchem_ledger::merkle::{self, Frontier, MemoryTree};
use hazchem_ledger::note::{Checkpoint, NoteSigner};
use hazchem_ledger::store::{Append, LedgerStore, StoreState};
use hazchem_ledger::verify::Verifier;
use hazchem_ledger::{Ledger, LedgerConfig, StartupCheck};
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use prost::Message;

fn leaves() -> u64 {
    std::env::var("LEDGER_BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// A realistic stored record: the waybill fixture with a unique id.
fn record_template() -> v1::Event {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/events/waybill_issued.json"
    );
    let text = std::fs::read_to_string(path).expect("the waybill fixture");
    hazchem_proto::from_json::<v1::Event>(&text).expect("a hazchem.v1.Event")
}

fn record(template: &v1::Event, i: u64) -> (String, Vec<u8>) {
    let mut event = template.clone();
    event.id = format!("bench-{i:08}");
    let record = v1::Record {
        event: event.encode_to_vec(),
        signature: None,
        publisher: Some(v1::Publisher {
            principal: Some(v1::publisher::Principal::Department(
                v1::Department::Transport as i32,
            )),
        }),
        accepted_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000 + i as i64,
            nanos: 0,
        }),
    };
    (event.id, record.encode_to_vec())
}

struct Row {
    what: String,
    count: u64,
    elapsed: Duration,
    unit: &'static str,
}

impl Row {
    fn print(&self) {
        let rate = self.count as f64 / self.elapsed.as_secs_f64();
        println!(
            "| {:<58} | {:>9} | {:>8.2} s | {:>12.0} {}/s |",
            self.what,
            self.count,
            self.elapsed.as_secs_f64(),
            rate,
            self.unit
        );
    }
}

fn append_store(
    dir: &std::path::Path,
    template: &v1::Event,
    n: u64,
    batch: u64,
    runtime: &tokio::runtime::Runtime,
) -> (Row, LedgerStore) {
    let store = LedgerStore::open(dir).expect("open the store");
    let (mut frontier, mut state) = (Frontier::new(), StoreState::default());
    let records: Vec<(String, Vec<u8>)> = (0..n).map(|i| record(template, i)).collect();
    let started = Instant::now();
    for chunk in records.chunks(batch as usize) {
        let base = frontier.size();
        let items: Vec<Append<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(k, (id, bytes))| Append {
                sequence: base + k as u64 + 1,
                publisher: "psb",
                id,
                record: bytes,
                foreign: true,
                checkpoint: None,
            })
            .collect();
        store
            .append(&mut frontier, &mut state, &items)
            .expect("append");
        runtime.block_on(store.flush()).expect("flush");
    }
    let row = Row {
        what: format!("append to the sled store, flush per batch of {batch}"),
        count: n,
        elapsed: started.elapsed(),
        unit: "events",
    };
    (row, store)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 2_000 } else { leaves() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let template = record_template();
    let sample = record(&template, 0).1.len();
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "\nhazchem-ledger benchmark: {n} leaves of {sample} bytes, {} CPUs\n",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "| {:<58} | {:>9} | {:>10} | {:>18} |",
        "operation", "count", "time", "rate"
    );
    println!("|{:-<60}|{:->11}|{:->12}|{:->20}|", "", "", "", "");

    // Append: two batch sizes; the second store is kept for the proofs.
    let (row, _) = append_store(
        &dir.path().join("append-100"),
        &template,
        n.min(50_000),
        100,
        &runtime,
    );
    row.print();
    let (row, store) = append_store(
        &dir.path().join("append-1000"),
        &template,
        n,
        1000,
        &runtime,
    );
    row.print();

    // Proofs from the sled store.
    let size = n;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let proofs = if quick { 1_000 } else { 50_000 };
    let started = Instant::now();
    for _ in 0..proofs {
        let proof = merkle::inclusion_proof(&store, next(size), size).expect("an inclusion proof");
        std::hint::black_box(proof);
    }
    Row {
        what: format!("inclusion proof, random leaf, tree of {size}"),
        count: proofs,
        elapsed: started.elapsed(),
        unit: "proofs",
    }
    .print();
    let started = Instant::now();
    for _ in 0..proofs {
        let proof = merkle::consistency_proof(&store, 1 + next(size - 1), size)
            .expect("a consistency proof");
        std::hint::black_box(proof);
    }
    Row {
        what: format!("consistency proof, random first size, to {size}"),
        count: proofs,
        elapsed: started.elapsed(),
        unit: "proofs",
    }
    .print();
    let started = Instant::now();
    for _ in 0..proofs {
        let m = 1 + next(size - 1);
        let proof = merkle::consistency_proof(&store, m, size).expect("a consistency proof");
        let leaf = next(m);
        let inclusion = merkle::inclusion_proof(&store, leaf, m).expect("an inclusion proof");
        std::hint::black_box((proof, inclusion));
    }
    Row {
        what: "inclusion at an earlier size + consistency to the latest".into(),
        count: proofs,
        elapsed: started.elapsed(),
        unit: "pairs",
    }
    .print();

    // Verification: the in-memory Verifier over every record, then a bundle on disk.
    let signer = NoteSigner::new(hazchem_ledger::DEFAULT_ORIGIN, SigningKey::generate()).unwrap();
    let root = merkle::root(&store, size).unwrap();
    let note = signer.sign_checkpoint(&Checkpoint {
        origin: hazchem_ledger::DEFAULT_ORIGIN.into(),
        size,
        root,
    });
    let records: Vec<Vec<u8>> = store
        .leaves(0, size)
        .map(|r| r.expect("a leaf").1.to_vec())
        .collect();
    let started = Instant::now();
    let mut verifier = Verifier::new(signer.verifier(), &note).unwrap();
    for (i, r) in records.iter().enumerate() {
        verifier.push(i as u64, r, None);
    }
    verifier.finish().expect("the log verifies");
    Row {
        what: "verify: recompute the root over every record".into(),
        count: size,
        elapsed: started.elapsed(),
        unit: "records",
    }
    .print();
    let bundle_dir = dir.path().join("bundle");
    let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| merkle::leaf_hash(r)));
    let mut writer = BundleWriter::create(&bundle_dir).unwrap();
    for (i, r) in records.iter().enumerate() {
        writer
            .write_record(&BundleRecord {
                index: i as u64,
                record: r.clone(),
                proof: Some(merkle::inclusion_proof(&tree, i as u64, size).unwrap()),
            })
            .unwrap();
    }
    writer
        .finish(&note, Some(&signer.verifier()), None, chrono::Utc::now())
        .unwrap();
    let started = Instant::now();
    let verified = verify_bundle(&bundle_dir, signer.verifier(), &Default::default())
        .expect("the bundle verifies");
    assert_eq!(verified.inclusion_proofs, size);
    Row {
        what: "verify --bundle: read JSONL, root + an inclusion proof each".into(),
        count: size,
        elapsed: started.elapsed(),
        unit: "records",
    }
    .print();
    drop(store);

    // End-to-end ingest from an embedded bus.
    let ingest_n = if quick { 2_000 } else { n.min(100_000) };
    let bus_dir = dir.path().join("bus");
    let bus = runtime
        .block_on(hazchem_bus::Bus::embedded(&bus_dir))
        .expect("an embedded bus");
    runtime.block_on(async {
        for chunk in (0..ingest_n).collect::<Vec<_>>().chunks(1000) {
            let outgoing = chunk
                .iter()
                .map(|&i| {
                    let (id, bytes) = record(&template, i);
                    hazchem_bus::Outgoing::event("transport", "waybill_issued", &id, bytes).unwrap()
                })
                .collect();
            for ack in bus.publish_many(outgoing).await {
                ack.expect("stored");
            }
        }
    });
    let key_dir = dir.path().join("key");
    std::fs::create_dir_all(&key_dir).unwrap();
    let config = LedgerConfig {
        store: dir.path().join("ingest"),
        checkpoint_every: 1_000_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        startup_check: StartupCheck::Full,
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(
        &config,
        SigningKey::generate(),
        hazchem_admission::Policy::default_policy(),
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = runtime.spawn({
        let (ledger, bus, shutdown) = (ledger.clone(), bus.clone(), shutdown.clone());
        async move { ledger.run(bus, None, shutdown).await }
    });
    runtime.block_on(ledger.wait_for_size(ingest_n));
    let elapsed = started.elapsed();
    shutdown.cancel();
    runtime.block_on(task).unwrap().unwrap();
    Row {
        what: format!(
            "ingest from the embedded bus, max_batch {}",
            config.max_batch
        ),
        count: ingest_n,
        elapsed,
        unit: "events",
    }
    .print();
    drop(ledger);
    let started = Instant::now();
    let reopened = Ledger::open(
        &config,
        SigningKey::generate(),
        hazchem_admission::Policy::default_policy(),
    )
    .unwrap();
    Row {
        what: "start: full store check (every leaf and hash)".into(),
        count: reopened.size(),
        elapsed: started.elapsed(),
        unit: "leaves",
    }
    .print();
    println!();
}
