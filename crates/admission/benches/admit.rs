//! What admission costs the gateway per event, against decoding the same bytes. Prints a table.
//!
//! ```text
//! cargo bench -p hazchem-admission --bench admit
//! ```
//!
//! Method (see docs/BENCHMARKS.md): the events are the shared fixtures (`tests/fixtures/events`, one of
//! every event type, about 500 B encoded on average), each admitted for its own publisher under the default policy;
//! events the policy requires signed carry their department's Ed25519 signature, the others none. Every
//! row runs the whole corpus round after round for a fixed time on 1 and on all CPUs (each thread its own
//! loop over shared, read-only state, as the gateway's request tasks are):
//!
//! - **decode** (the baseline): `prost::Message::decode` of the bytes into `hazchem.v1.Event`, the least
//!   any gateway does with an event it stores;
//! - **admit**: `Admission::admit`: size, decoding, publish policy, envelope, every field rule of the
//!   contract, the origin signature where there is one.
//!
//! The figure is the ratio admit/decode of one run; absolute rates move with the machine's load.

#![allow(clippy::disallowed_methods)] // benchmark: events are admitted at wall time

use std::time::{Duration, Instant};

use chrono::Utc;
use hazchem_admission::Policy;
use hazchem_pki::Principal;
use hazchem_proto::v1;
use prost::Message;

#[path = "../tests/common/mod.rs"]
mod common;

const ROUND_TIME: Duration = Duration::from_secs(3);

struct Item {
    principal: Principal,
    signed: v1::SignedEvent,
}

/// Every fixture, as its publisher would send it: signed where the policy requires it.
fn corpus(policy: &Policy) -> Vec<Item> {
    let files = common::fixtures();
    assert!(!files.is_empty(), "no fixtures in tests/fixtures/events");
    files
        .iter()
        .map(|path| {
            let token = path.file_stem().and_then(|s| s.to_str()).expect("a token");
            let json = std::fs::read_to_string(path).expect("a fixture");
            let event: v1::Event = hazchem_proto::from_json(&json).expect("a hazchem.v1.Event");
            let principal = common::publisher(policy, &event, token);
            let bytes = event.encode_to_vec();
            let signature = principal
                .department()
                .filter(|d| policy.signature_required(*d, token))
                .map(|d| v1::OriginSignature {
                    key_id: common::signing_key(d).origin_key_id(d),
                    signature: common::signing_key(d).sign(&bytes).to_vec(),
                });
            Item {
                principal,
                signed: v1::SignedEvent {
                    event: bytes,
                    signature,
                },
            }
        })
        .collect()
}

/// Runs `work` over the corpus on `threads` threads for [`ROUND_TIME`]; events per second.
fn rate(threads: usize, corpus: &[Item], work: &(dyn Fn(&Item) -> bool + Sync)) -> f64 {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let started = Instant::now();
                    let mut done = 0u64;
                    while started.elapsed() < ROUND_TIME {
                        for item in corpus {
                            assert!(work(item), "an event of the corpus was refused");
                        }
                        done += corpus.len() as u64;
                    }
                    done as f64 / started.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread"))
            .sum()
    })
}

fn main() {
    let corpus = corpus(&Policy::default_policy());
    let admission = common::admission();
    let now = Utc::now();
    let bytes: usize = corpus.iter().map(|i| i.signed.event.len()).sum();
    let signed = corpus
        .iter()
        .filter(|i| i.signed.signature.is_some())
        .count();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    let decode = |item: &Item| v1::Event::decode(item.signed.event.as_slice()).is_ok();
    let admit = |item: &Item| admission.admit(&item.principal, &item.signed, now).is_ok();

    println!(
        "hazchem-admission benchmark: {} fixture events (one of every type, mean {} B, {signed} signed), {cpus} CPUs, {} s a row",
        corpus.len(),
        bytes / corpus.len(),
        ROUND_TIME.as_secs()
    );
    println!(
        "| threads | decode events/s | admit events/s | admit/decode | admit µs/event/thread |"
    );
    println!(
        "|--------:|----------------:|---------------:|-------------:|----------------------:|"
    );
    let mut threads = vec![1];
    if cpus > 1 {
        threads.push(cpus);
    }
    for t in threads {
        let decoded = rate(t, &corpus, &decode);
        let admitted = rate(t, &corpus, &admit);
        println!(
            "| {t:>7} | {decoded:>15.0} | {admitted:>14.0} | {:>12.3} | {:>21.1} |",
            admitted / decoded,
            1e6 * t as f64 / admitted
        );
    }
}
