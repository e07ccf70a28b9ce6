//! `Check` throughput and latency over gRPC (mTLS, loopback) against a registry of 100,000 enterprises
//! with 10,000 active listings, and the in-memory `Credit::check` as a baseline in the same run.
//!
//! ```sh
//! cargo bench -p hazchem-credit --bench check
//! # knobs: CREDIT_BENCH_SECS (per run, default 5), CREDIT_BENCH_CLIENTS (default "1,8,32,128"),
//! #        CREDIT_BENCH_CONNECTIONS (HTTP/2 connections shared by the clients, default 1)
//! ```
//!
//! The registry: every enterprise has one penalty and one serious-dishonest listing with three
//! measures; 10,000 listings are active (listed 200 days ago), 45,000 expired (listed four years ago) and
//! 45,000 repaired (listed two years ago, repaired thirteen months later). Each call asks about an
//! enterprise drawn uniformly from the 100,000 (so one call in ten finds an active listing), for a
//! department drawn uniformly from the nine, at "now".

#![allow(clippy::disallowed_methods)] // benchmark: queries run against wall time

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use hazchem_credit::fixtures::uscc;
use hazchem_credit::registry::{
    Classification, Decision, Fact, LegalBasis, ListType, ListingDecision, Measure, Penalty,
    Recorded, RepairDecision, add_months,
};
use hazchem_credit::{Credit, CreditConfig, CreditServer};
use hazchem_domain::{Department, Uscc};
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_proto::v1::credit_service_client::CreditServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const ENTERPRISES: u64 = 100_000;
const ACTIVE: u64 = 10_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: cheap, deterministic draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn populate(credit: &Credit) {
    let now = Utc::now();
    let basis = LegalBasis {
        instrument: "应急管理部令第11号".into(),
        article: "第六条".into(),
        version: "2023-08-08".into(),
    };
    let measures = vec![
        Measure {
            code: "stricter_inspection".into(),
            applies_to: vec![],
            description: String::new(),
        },
        Measure {
            code: "licence_restriction".into(),
            applies_to: vec![Department::Emergency, Department::Approval],
            description: String::new(),
        },
        Measure {
            code: "procurement_ban".into(),
            applies_to: vec![],
            description: String::new(),
        },
    ];
    let mut sequence = 0;
    let mut facts = Vec::with_capacity(250_000);
    let mut push = |recorded_at, fact| {
        sequence += 1;
        facts.push(Recorded {
            sequence,
            recorded_at,
            fact,
        });
    };
    for i in 0..ENTERPRISES {
        let enterprise = uscc(i);
        let listed_at = if i < ACTIVE {
            now - TimeDelta::days(200)
        } else if i % 2 == 0 {
            now - TimeDelta::days(4 * 365)
        } else {
            now - TimeDelta::days(2 * 365)
        };
        let number = format!("P-{i}");
        push(
            listed_at,
            Fact::Penalty(Penalty {
                event_id: format!("pen-{i}"),
                department: Department::Emergency,
                decision_number: number.clone(),
                enterprise: enterprise.clone(),
                decided_at: listed_at,
            }),
        );
        push(
            listed_at,
            Fact::Decision(Decision::Listing(ListingDecision {
                event_id: format!("lst-{i}"),
                listing_id: format!("CL-{i}"),
                enterprise,
                enterprise_name: format!("企业 {i}"),
                list_type: ListType::SeriousDishonest,
                department: Department::Emergency,
                legal_basis: Some(basis.clone()),
                classification: Classification::Shared,
                reason: "受到行政处罚，情节严重".into(),
                penalty_decision_number: Some(number),
                measures: measures.clone(),
                listed_at,
            })),
        );
        if i >= ACTIVE && i % 2 == 1 {
            let repaired_at = add_months(listed_at, 13);
            push(
                repaired_at,
                Fact::Decision(Decision::Repair(RepairDecision {
                    event_id: format!("rep-{i}"),
                    listing_id: format!("CL-{i}"),
                    department: Department::Emergency,
                    legal_basis: Some(basis.clone()),
                    reason: "整改完成".into(),
                    repaired_at,
                })),
            );
        }
    }
    let refused = credit
        .apply_all(facts)
        .into_iter()
        .filter(|o| matches!(o, hazchem_credit::registry::Outcome::Refused(_)))
        .count();
    assert_eq!(refused, 0);
    let active = (0..ENTERPRISES)
        .filter(|i| {
            !credit
                .check(&uscc(*i), Department::Emergency, now)
                .active
                .is_empty()
        })
        .count();
    assert_eq!(active as u64, ACTIVE);
}

struct Stats {
    calls: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
}

impl Stats {
    fn of(mut latencies: Vec<u64>, elapsed: Duration) -> Stats {
        latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
            Duration::from_nanos(latencies[i])
        };
        Stats {
            calls: latencies.len(),
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// The in-memory check on `threads` OS threads for `secs`.
fn in_memory(credit: &Credit, usccs: &Arc<Vec<Uscc>>, threads: usize, secs: Duration) -> Stats {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let credit = credit.clone();
            let usccs = usccs.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let mut latencies = Vec::with_capacity(1 << 20);
                let deadline = Instant::now() + secs;
                while Instant::now() < deadline {
                    let e = &usccs[(rng.next() % ENTERPRISES) as usize];
                    let d = Department::ALL[(rng.next() % 9) as usize];
                    let t0 = Instant::now();
                    let r = credit.check(e, d, Utc::now());
                    std::hint::black_box(r);
                    latencies.push(t0.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    Stats::of(latencies, started.elapsed())
}

/// `clients` concurrent callers over `channels` for `secs`.
async fn over_grpc(
    channels: &[Channel],
    usccs: &Arc<Vec<Uscc>>,
    clients: usize,
    secs: Duration,
) -> Stats {
    let started = Instant::now();
    let deadline = started + secs;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = CreditServiceClient::new(channels[c % channels.len()].clone());
        let usccs = usccs.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (c as u64 + 1));
            let mut latencies = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let e = &usccs[(rng.next() % ENTERPRISES) as usize];
                let d = Department::ALL[(rng.next() % 9) as usize];
                let request = v1::CheckRequest {
                    uscc: e.as_str().to_owned(),
                    department: v1::Department::from(d) as i32,
                    at: None,
                };
                let t0 = Instant::now();
                let response = client.check(request).await.expect("Check");
                latencies.push(t0.elapsed().as_nanos() as u64);
                std::hint::black_box(response);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Stats::of(latencies, started.elapsed())
}

fn main() {
    let secs = Duration::from_secs(env_or("CREDIT_BENCH_SECS", 5));
    let clients: Vec<usize> = std::env::var("CREDIT_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let connections = env_or("CREDIT_BENCH_CONNECTIONS", 1usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let state = tempfile::tempdir().unwrap();
        let config = CreditConfig {
            state: state.path().join("credit"),
            ..CreditConfig::default()
        };
        let credit = Credit::open(&config, hazchem_admission::Policy::default_policy()).unwrap();
        let t0 = Instant::now();
        populate(&credit);
        let (listings, enterprises) = credit.size();
        eprintln!(
            "registry: {enterprises} enterprises, {listings} listings ({ACTIVE} active), built in {:.1} s",
            t0.elapsed().as_secs_f64()
        );

        let pki = DevPki::generate(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("credit-bench-pki")).unwrap();
        let tls = pki.server_tls().unwrap();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = {
            let server = CreditServer::new(credit.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move { server.serve(listener, &tls, shutdown).await })
        };
        let client_tls = pki.client_tls(&Principal::Department(Department::Fire)).unwrap();
        let mut channels = Vec::new();
        for _ in 0..connections {
            let channel = Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(client_tls.config())
                .unwrap()
                .connect()
                .await
                .unwrap();
            channels.push(channel);
        }
        let usccs: Arc<Vec<Uscc>> = Arc::new((0..ENTERPRISES).map(uscc).collect());
        // Warm up connections and caches.
        let _ = over_grpc(&channels, &usccs, 8, Duration::from_millis(500)).await;

        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "\nCheck against {enterprises} enterprises / {ACTIVE} active listings; {} s per row; {cpus} CPUs; \
             gRPC over mTLS on loopback, {connections} HTTP/2 connections\n",
            secs.as_secs()
        );
        println!("| path | concurrency | calls/s | p50 µs | p99 µs | p99.9 µs |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        let memory_1 = {
            let credit = credit.clone();
            let usccs = usccs.clone();
            tokio::task::spawn_blocking(move || in_memory(&credit, &usccs, 1, secs)).await.unwrap()
        };
        let memory_n = {
            let credit = credit.clone();
            let usccs = usccs.clone();
            tokio::task::spawn_blocking(move || in_memory(&credit, &usccs, cpus, secs)).await.unwrap()
        };
        for (label, threads, s) in [("in-memory Credit::check", 1, &memory_1), ("in-memory Credit::check", cpus, &memory_n)] {
            println!(
                "| {label} | {threads} threads | {:.0} | {} | {} | {} |",
                s.per_second(),
                micros(s.p50),
                micros(s.p99),
                micros(s.p999)
            );
        }
        let mut best = 0.0f64;
        for c in clients {
            let s = over_grpc(&channels, &usccs, c, secs).await;
            best = best.max(s.per_second());
            println!(
                "| gRPC Check | {c} clients | {:.0} | {} | {} | {} |",
                s.per_second(),
                micros(s.p50),
                micros(s.p99),
                micros(s.p999)
            );
        }
        println!(
            "\nbest gRPC throughput / in-memory throughput ({cpus} threads): {:.4} (1 : {:.0})",
            best / memory_n.per_second(),
            memory_n.per_second() / best.max(1.0)
        );
        shutdown.cancel();
        let _ = server.await;
    });
}
