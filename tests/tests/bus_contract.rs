//! The bus contract: one set of tests, run against the embedded bus and against JetStream (a real
//! `nats-server` per test). Each `contract_*` function takes the [`Kind`] of bus; the
//! `contract!` macro instantiates it for both.

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use chrono::Utc;
use futures::StreamExt;
use hazchem_bus::{
    Ack, Bus, Error, Filter, JetStreamConfig, Message, MessageStream, Outgoing, Start,
};
use hazchem_tests::NatsServer;
use tempfile::TempDir;

/// Longest wait for a message that should arrive.
const ARRIVE: Duration = Duration::from_secs(10);
/// How long to watch for a message that should not arrive.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Embedded,
    JetStream,
}

/// Where a bus under test lives, and how to make (and remake) it.
struct Env {
    kind: Kind,
    dir: TempDir,
    server: Option<NatsServer>,
    config: Option<JetStreamConfig>,
}

impl Env {
    fn new(kind: Kind) -> Env {
        Env::with(kind, |_| {})
    }

    fn with(kind: Kind, tweak: impl FnOnce(&mut JetStreamConfig)) -> Env {
        hazchem_tests::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, config) = match kind {
            Kind::Embedded => (None, None),
            Kind::JetStream => {
                let server = NatsServer::start();
                let mut config = JetStreamConfig::new(server.url());
                config.reader_pull_expiry = Duration::from_secs(1);
                tweak(&mut config);
                (Some(server), Some(config))
            }
        };
        Env {
            kind,
            dir,
            server,
            config,
        }
    }

    async fn bus(&self) -> Result<Bus> {
        Ok(match self.kind {
            Kind::Embedded => Bus::embedded(&self.dir.path().join("bus")).await?,
            Kind::JetStream => Bus::jetstream(self.config.as_ref().expect("config")).await?,
        })
    }

    /// Closes `bus` and opens it again: embedded drops it and reopens the directory; JetStream
    /// restarts the server (same store, same port) and reconnects.
    async fn reopen(&mut self, bus: Bus) -> Result<Bus> {
        drop(bus);
        if let Some(server) = self.server.as_mut() {
            server.restart();
        }
        self.bus().await
    }
}

fn event(publisher: &str, type_token: &str, id: &str, payload: &str) -> Outgoing {
    Outgoing::event(publisher, type_token, id, payload.to_owned()).expect("valid event")
}

fn numbered(prefix: &str, i: usize) -> Outgoing {
    let id = format!("{prefix}-{i}");
    event("miit", "sale", &id, &format!("payload {id}"))
}

async fn next(stream: &mut MessageStream) -> Result<Message> {
    tokio::time::timeout(ARRIVE, stream.next())
        .await
        .context("no message arrived in time")?
        .context("stream ended")?
        .context("stream yielded an error")
}

async fn take(stream: &mut MessageStream, n: usize) -> Result<Vec<Message>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(stream).await?);
    }
    Ok(out)
}

async fn assert_quiet(stream: &mut MessageStream) -> Result<()> {
    if let Ok(item) = tokio::time::timeout(QUIET, stream.next()).await {
        anyhow::bail!("expected nothing, got {item:?}");
    }
    Ok(())
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.sequence).collect()
}

async fn publish_n(bus: &Bus, prefix: &str, n: usize) -> Result<Vec<Ack>> {
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        acks.push(bus.publish(numbered(prefix, i)).await?);
    }
    Ok(acks)
}

async fn contract_publish_assigns_increasing_sequences(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    ensure!(bus.last_sequence().await? == 0, "a new bus is empty");
    let acks = publish_n(&bus, "e", 5).await?;
    let expected: Vec<Ack> = (1..=5)
        .map(|sequence| Ack {
            sequence,
            duplicate: false,
        })
        .collect();
    ensure!(acks == expected, "acks {acks:?}");
    ensure!(bus.last_sequence().await? == 5);
    Ok(())
}

async fn contract_publish_many_keeps_order(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    bus.publish(numbered("pre", 0)).await?;
    let mut batch: Vec<Outgoing> = (0..300).map(|i| numbered("b", i)).collect();
    // A repeat of an earlier id, a repeat inside the batch, and an invalid message.
    batch.insert(10, numbered("pre", 0));
    batch.insert(20, numbered("b", 5));
    batch.insert(30, Outgoing::new("hazchem.ev.miit.sale.x", "y", "bad"));
    let results = bus.publish_many(batch).await;
    ensure!(results.len() == 303);
    let mut next_seq = 2;
    for (i, result) in results.iter().enumerate() {
        match i {
            10 => ensure!(
                matches!(
                    result,
                    Ok(Ack {
                        sequence: 1,
                        duplicate: true
                    })
                ),
                "{result:?}"
            ),
            20 => ensure!(
                matches!(
                    result,
                    Ok(Ack {
                        sequence: 7,
                        duplicate: true
                    })
                ),
                "{result:?}"
            ),
            30 => ensure!(
                matches!(result, Err(Error::IdMismatch { .. })),
                "{result:?}"
            ),
            _ => {
                let ack = result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    *ack == Ack {
                        sequence: next_seq,
                        duplicate: false
                    },
                    "result {i}: {ack:?}, expected sequence {next_seq}"
                );
                next_seq += 1;
            }
        }
    }
    ensure!(bus.last_sequence().await? == 301);
    // Stored in the order given.
    let stored = bus.get(2).await?.context("message 2")?;
    ensure!(stored.id() == "b-0", "{stored:?}");
    let stored = bus.get(301).await?.context("message 301")?;
    ensure!(stored.id() == "b-299", "{stored:?}");
    ensure!(bus.publish_many(Vec::new()).await.is_empty());
    Ok(())
}

async fn contract_duplicate_id_returns_original(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    let first = bus
        .publish(event("psb", "alarm", "dup-1", "original"))
        .await?;
    bus.publish(event("psb", "alarm", "other", "x")).await?;
    ensure!(
        first
            == Ack {
                sequence: 1,
                duplicate: false
            }
    );

    // Same subject, different payload.
    let again = bus
        .publish(event("psb", "alarm", "dup-1", "changed"))
        .await?;
    ensure!(
        again
            == Ack {
                sequence: 1,
                duplicate: true
            },
        "{again:?}"
    );
    // Same id, same publisher, another type: still the same event.
    let retyped = bus
        .publish(event("psb", "incident_report", "dup-1", "x"))
        .await?;
    ensure!(
        retyped
            == Ack {
                sequence: 1,
                duplicate: true
            },
        "{retyped:?}"
    );
    ensure!(bus.last_sequence().await? == 2, "nothing appended");

    // Ids are scoped by publisher: the same id from another publisher is another event, and its
    // answer says nothing about psb's.
    let elsewhere = bus
        .publish(event("fire", "alarm", "dup-1", "fire's own"))
        .await?;
    ensure!(
        elsewhere
            == Ack {
                sequence: 3,
                duplicate: false
            },
        "{elsewhere:?}"
    );
    let again = bus
        .publish(event("fire", "incident_report", "dup-1", "y"))
        .await?;
    ensure!(
        again
            == Ack {
                sequence: 3,
                duplicate: true
            },
        "{again:?}"
    );
    ensure!(bus.last_sequence().await? == 3);
    let stored = bus.get(1).await?.context("message 1")?;
    ensure!(stored.payload == "original", "{stored:?}");
    ensure!(stored.subject == "hazchem.ev.psb.alarm.dup-1");
    let fires = bus.get(3).await?.context("message 3")?;
    ensure!(fires.payload == "fire's own", "{fires:?}");
    ensure!(fires.publisher() == "fire" && fires.id() == "dup-1");
    Ok(())
}

async fn contract_concurrent_duplicates_make_one_record(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    for round in 0..3 {
        let id = format!("race-{round}");
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let bus = bus.clone();
                // Different types too: the publisher and the id alone decide.
                let type_token = ["alarm", "incident_report", "waybill_issued"][i % 3];
                let msg = event("psb", type_token, &id, &format!("copy {i}"));
                tokio::spawn(async move { bus.publish(msg).await })
            })
            .collect();
        let mut acks = Vec::new();
        for task in tasks {
            acks.push(task.await??);
        }
        let fresh = acks.iter().filter(|a| !a.duplicate).count();
        let sequences: BTreeSet<u64> = acks.iter().map(|a| a.sequence).collect();
        ensure!(
            fresh == 1,
            "round {round}: {fresh} publishes claimed to be first: {acks:?}"
        );
        ensure!(
            sequences.len() == 1,
            "round {round}: several sequences {sequences:?}"
        );
        ensure!(
            bus.last_sequence().await? == round + 1,
            "round {round} appended once"
        );
    }
    Ok(())
}

async fn contract_read_from_each_start(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    publish_n(&bus, "r", 10).await?;

    let all = take(&mut bus.read(Start::Beginning, Filter::all()), 10).await?;
    ensure!(
        seqs(&all) == (1..=10).collect::<Vec<_>>(),
        "{:?}",
        seqs(&all)
    );
    for (i, m) in all.iter().enumerate() {
        ensure!(m.id() == format!("r-{i}"));
        ensure!(m.payload == format!("payload r-{i}").into_bytes());
        ensure!(m.subject == format!("hazchem.ev.miit.sale.r-{i}"));
    }
    ensure!(
        all.windows(2).all(|w| w[0].time <= w[1].time),
        "stored times never decrease"
    );

    let from4 = take(&mut bus.read(Start::Sequence(4), Filter::all()), 7).await?;
    ensure!(seqs(&from4) == (4..=10).collect::<Vec<_>>());
    let from0 = next(&mut bus.read(Start::Sequence(0), Filter::all())).await?;
    ensure!(from0.sequence == 1);

    // The first message stored at or after a time.
    let t = all[5].time;
    let expected = all
        .iter()
        .find(|m| m.time >= t)
        .expect("message 6")
        .sequence;
    let by_time = next(&mut bus.read(Start::Time(t), Filter::all())).await?;
    ensure!(
        by_time.sequence == expected,
        "{} vs {expected}",
        by_time.sequence
    );
    let by_early = next(&mut bus.read(
        Start::Time(all[0].time - chrono::Duration::hours(1)),
        Filter::all(),
    ))
    .await?;
    ensure!(by_early.sequence == 1);

    // New: nothing from before, everything after ready().
    let mut new = bus.read(Start::New, Filter::all());
    new.ready().await?;
    // Beyond the end: waits for that sequence.
    let mut ahead = bus.read(Start::Sequence(12), Filter::all());
    ahead.ready().await?;
    // In the future: only messages stored at or after that time.
    let mut future = bus.read(
        Start::Time(Utc::now() + chrono::Duration::hours(1)),
        Filter::all(),
    );
    future.ready().await?;
    bus.publish(numbered("late", 0)).await?;
    bus.publish(numbered("late", 1)).await?;
    let fresh = next(&mut new).await?;
    ensure!(fresh.sequence == 11 && fresh.id() == "late-0", "{fresh:?}");
    ensure!(next(&mut new).await?.sequence == 12);
    ensure!(next(&mut ahead).await?.sequence == 12);
    assert_quiet(&mut future).await?;
    Ok(())
}

async fn contract_catch_up_then_live_without_gaps(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    const BEFORE: usize = 300;
    const DURING: usize = 400;
    let batch: Vec<Outgoing> = (0..BEFORE).map(|i| numbered("before", i)).collect();
    for result in bus.publish_many(batch).await {
        result?;
    }
    // Readers start while a writer keeps appending, one by one and in small batches.
    let writer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while i < DURING {
                if i % 50 < 25 {
                    bus.publish(numbered("during", i)).await?;
                    i += 1;
                } else {
                    let batch: Vec<Outgoing> = (i..i + 5).map(|j| numbered("during", j)).collect();
                    for result in bus.publish_many(batch).await {
                        result?;
                    }
                    i += 5;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut from_start = bus.read(Start::Beginning, Filter::all());
    let mut from_middle = bus.read(Start::Sequence(150), Filter::all());
    let total = BEFORE + DURING;
    let a = take(&mut from_start, total).await?;
    let b = take(&mut from_middle, total - 149).await?;
    writer.await??;
    ensure!(
        seqs(&a) == (1..=total as u64).collect::<Vec<_>>(),
        "gap or duplicate from the start"
    );
    ensure!(
        seqs(&b) == (150..=total as u64).collect::<Vec<_>>(),
        "gap or duplicate from 150"
    );
    for (i, m) in a.iter().enumerate().skip(BEFORE) {
        ensure!(
            m.id() == format!("during-{}", i - BEFORE),
            "order of live messages at {i}"
        );
    }
    // And it keeps following.
    bus.publish(numbered("after", 0)).await?;
    ensure!(next(&mut from_start).await?.sequence == total as u64 + 1);
    ensure!(next(&mut from_middle).await?.sequence == total as u64 + 1);
    Ok(())
}

async fn contract_filters_select_subsets(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    let plan = [
        ("miit", "sale"),
        ("psb", "alarm"),
        ("miit", "alarm"),
        ("fire", "incident_report"),
        ("psb", "sale"),
        ("fire", "alarm"),
    ];
    let mut batch = Vec::new();
    for round in 0..3 {
        for (publisher, type_token) in plan {
            let id = format!("{publisher}-{type_token}-{round}");
            batch.push(event(publisher, type_token, &id, "x"));
        }
    }
    // Every subject stored so far, by sequence - 1.
    let mut log: Vec<String> = batch.iter().map(|m| m.subject.clone()).collect();
    for result in bus.publish_many(batch).await {
        result?;
    }
    for (round, patterns) in [
        &["hazchem.ev.miit.>"][..],
        &["hazchem.ev.*.alarm.*"],
        &["hazchem.ev.fire.incident_report.fire-incident_report-1"],
        // Disjoint: the JetStream server filters.
        &["hazchem.ev.miit.>", "hazchem.ev.fire.>"],
        // Overlapping (hazchem.ev.miit.alarm.*): each message once, in order.
        &["hazchem.ev.miit.>", "hazchem.ev.*.alarm.*"],
        &["hazchem.>"],
    ]
    .into_iter()
    .enumerate()
    {
        let filter = Filter::new(patterns.iter().copied())?;
        let expected: Vec<u64> = (1..=log.len() as u64)
            .filter(|&seq| filter.matches(&log[seq as usize - 1]))
            .collect();
        let mut reader = bus.read(Start::Beginning, filter.clone());
        let got = take(&mut reader, expected.len()).await?;
        ensure!(
            seqs(&got) == expected,
            "{patterns:?}: {:?} vs {expected:?}",
            seqs(&got)
        );
        ensure!(got.iter().all(|m| filter.matches(&m.subject)));

        // Live: a non-matching message is skipped, the next matching one arrives.
        let skip = event("samr", "inspection", &format!("skip-{round}"), "x");
        let skip_matches = filter.matches(&skip.subject);
        log.push(skip.subject.clone());
        let skip_ack = bus.publish(skip).await?;
        if skip_matches {
            ensure!(next(&mut reader).await?.sequence == skip_ack.sequence);
        }
        let candidates = [("miit", "alarm"), ("fire", "sale"), ("psb", "alarm")];
        let Some(matching) = candidates
            .iter()
            .map(|(p, t)| event(p, t, &format!("live-{round}-{p}"), "x"))
            .find(|m| filter.matches(&m.subject))
        else {
            continue;
        };
        log.push(matching.subject.clone());
        let ack = bus.publish(matching).await?;
        let live = next(&mut reader).await?;
        ensure!(live.sequence == ack.sequence, "{patterns:?}: live {live:?}");
    }
    Ok(())
}

async fn contract_get_by_sequence(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    ensure!(bus.get(1).await?.is_none());
    publish_n(&bus, "g", 3).await?;
    ensure!(bus.get(0).await?.is_none());
    ensure!(bus.get(4).await?.is_none());
    let m = bus.get(2).await?.context("message 2")?;
    ensure!(m.sequence == 2 && m.id() == "g-1" && m.payload == "payload g-1");
    let read = next(&mut bus.read(Start::Sequence(2), Filter::all())).await?;
    ensure!(read == m, "get and read agree: {read:?} vs {m:?}");
    Ok(())
}

async fn contract_cursors(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    ensure!(bus.load_cursor("ledger").await?.is_none());
    bus.store_cursor("ledger", 5).await?;
    bus.store_cursor("credit-main_1", 7).await?;
    ensure!(bus.load_cursor("ledger").await? == Some(5));
    bus.store_cursor("ledger", 3).await?;
    ensure!(bus.load_cursor("ledger").await? == Some(3), "overwritten");
    ensure!(bus.load_cursor("credit-main_1").await? == Some(7));
    for bad in ["", "a.b", "a b", "a*"] {
        ensure!(
            matches!(
                bus.store_cursor(bad, 1).await,
                Err(Error::InvalidCursorName { .. })
            ),
            "{bad:?} accepted"
        );
        ensure!(matches!(
            bus.load_cursor(bad).await,
            Err(Error::InvalidCursorName { .. })
        ));
    }
    Ok(())
}

async fn contract_invalid_messages_are_refused(kind: Kind) -> Result<()> {
    let env = Env::new(kind);
    let bus = env.bus().await?;
    for msg in [
        Outgoing::new("hazchem.ev.miit.sale.a", "b", "id is not the last token"),
        Outgoing::new("hazchem.ev.miit.Sale.a", "a", "bad type"),
        Outgoing::new("hazchem.ev.miit.sale", "sale", "too short"),
        Outgoing::new("other.ev.miit.sale.a", "a", "wrong prefix"),
        Outgoing::new("hazchem.ev.miit.sale.a.b", "b", "too long"),
        Outgoing::new("hazchem.ev.miit.sale.a!", "a!", "bad id"),
    ] {
        let err = bus.publish(msg.clone()).await.expect_err("refused");
        ensure!(err.is_invalid_request(), "{msg:?}: {err}");
    }
    ensure!(bus.last_sequence().await? == 0, "nothing appended");
    ensure!(Filter::subject("nothing.here").is_err());
    Ok(())
}

async fn contract_reopen_keeps_everything(kind: Kind) -> Result<()> {
    let mut env = Env::new(kind);
    let bus = env.bus().await?;
    let batch: Vec<Outgoing> = (0..40).map(|i| numbered("keep", i)).collect();
    for result in bus.publish_many(batch).await {
        result?;
    }
    publish_n(&bus, "single", 10).await?;
    bus.store_cursor("ledger", 42).await?;
    let before = take(&mut bus.read(Start::Beginning, Filter::all()), 50).await?;

    let bus = env.reopen(bus).await?;
    ensure!(bus.last_sequence().await? == 50);
    ensure!(bus.load_cursor("ledger").await? == Some(42));
    let after = take(&mut bus.read(Start::Beginning, Filter::all()), 50).await?;
    ensure!(before == after, "the log survived unchanged");
    // Deduplication survives too, and sequences continue.
    let again = bus.publish(numbered("keep", 3)).await?;
    ensure!(
        again
            == Ack {
                sequence: 4,
                duplicate: true
            },
        "{again:?}"
    );
    let fresh = bus.publish(numbered("fresh", 0)).await?;
    ensure!(
        fresh
            == Ack {
                sequence: 51,
                duplicate: false
            },
        "{fresh:?}"
    );
    ensure!(bus.get(51).await?.context("51")?.time >= after[49].time);

    // And once more, right after those writes.
    let bus = env.reopen(bus).await?;
    ensure!(bus.last_sequence().await? == 51);
    ensure!(bus.get(51).await?.context("51 after second reopen")?.id() == "fresh-0");
    Ok(())
}

/// A model test: random publishers, types, ids (with many repeats), single publishes and batches, and
/// reopens, checked against a model of the contract: one record per (publisher, id), forever; an ack
/// names the first sequence of its (publisher, id), with `duplicate` exactly when it was seen before;
/// sequences are gapless; the log holds exactly the first message of each key, in order.
async fn contract_matches_the_model_under_random_traffic(kind: Kind) -> Result<()> {
    use std::collections::BTreeMap;
    let mut env = Env::new(kind);
    let mut bus = env.bus().await?;
    // A small xorshift generator: the seed is printed, so a failure can be replayed.
    let seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ (Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64);
    eprintln!("model seed {seed:#x}");
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let publishers = ["miit", "psb", "fire", "credit", "ledger"];
    let types = ["alarm", "sale", "waybill_issued"];
    // (publisher, id) -> (first sequence, its payload)
    let mut model: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    let mut last = 0u64;
    let mut op = 0;
    for round in 0..12 {
        let ops = 20 + next(20);
        for _ in 0..ops {
            op += 1;
            let batch = if next(3) == 0 { 1 + next(8) } else { 1 };
            let msgs: Vec<Outgoing> = (0..batch)
                .map(|_| {
                    let publisher = publishers[next(publishers.len() as u64) as usize];
                    let id = format!("id-{}", next(25));
                    let t = types[next(types.len() as u64) as usize];
                    event(publisher, t, &id, &format!("op {op} {publisher} {id}"))
                })
                .collect();
            let acks: Vec<Ack> = if batch == 1 {
                vec![bus.publish(msgs[0].clone()).await?]
            } else {
                bus.publish_many(msgs.clone())
                    .await
                    .into_iter()
                    .collect::<hazchem_bus::Result<_>>()?
            };
            for (msg, ack) in msgs.iter().zip(&acks) {
                let key = (msg.publisher().to_owned(), msg.id.clone());
                match model.get(&key) {
                    Some((first, _)) => ensure!(
                        *ack == Ack {
                            sequence: *first,
                            duplicate: true
                        },
                        "seed {seed:#x} op {op}: {key:?} again answered {ack:?}, first at {first}"
                    ),
                    None => {
                        last += 1;
                        ensure!(
                            *ack == Ack {
                                sequence: last,
                                duplicate: false
                            },
                            "seed {seed:#x} op {op}: new {key:?} answered {ack:?}, expected {last}"
                        );
                        let payload = String::from_utf8_lossy(&msg.payload).into_owned();
                        model.insert(key, (last, payload));
                    }
                }
            }
        }
        ensure!(
            bus.last_sequence().await? == last,
            "seed {seed:#x} round {round}"
        );
        if next(3) == 0 {
            bus = env.reopen(bus).await?;
            ensure!(
                bus.last_sequence().await? == last,
                "seed {seed:#x}: reopened"
            );
        }
    }
    // The log is exactly the model: the first message of each key, in sequence order.
    let mut stream = bus.read(Start::Beginning, Filter::all());
    let stored = take(&mut stream, last as usize).await?;
    let mut by_sequence: Vec<_> = model.iter().collect();
    by_sequence.sort_by_key(|(_, (sequence, _))| *sequence);
    for (message, (key, (sequence, payload))) in stored.iter().zip(by_sequence) {
        ensure!(message.sequence == *sequence, "seed {seed:#x}: {message:?}");
        ensure!(
            (message.publisher(), message.id()) == (key.0.as_str(), key.1.as_str()),
            "seed {seed:#x}: {message:?} is not {key:?}"
        );
        ensure!(
            message.payload == payload.as_bytes(),
            "seed {seed:#x}: {message:?}"
        );
    }
    assert_quiet(&mut stream).await
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Kind::Embedded).await
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Kind::JetStream).await
                }
            )*
        }
    };
}

contract!(
    contract_publish_assigns_increasing_sequences,
    contract_publish_many_keeps_order,
    contract_duplicate_id_returns_original,
    contract_concurrent_duplicates_make_one_record,
    contract_read_from_each_start,
    contract_catch_up_then_live_without_gaps,
    contract_filters_select_subsets,
    contract_get_by_sequence,
    contract_cursors,
    contract_invalid_messages_are_refused,
    contract_reopen_keeps_everything,
    contract_matches_the_model_under_random_traffic,
);

// JetStream only.

/// Forever-deduplication does not rely on JetStream's duplicate window: with a 100 ms window,
/// wait until the server has provably forgotten a message id, then repeat an event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_duplicate_caught_after_the_window() -> Result<()> {
    let env = Env::with(Kind::JetStream, |config| {
        config.duplicate_window = Duration::from_millis(100);
    });
    let bus = env.bus().await?;
    let first = bus
        .publish(event("msa", "vessel_arrival", "old-1", "original"))
        .await?;
    ensure!(
        first
            == Ack {
                sequence: 1,
                duplicate: false
            }
    );

    // Probe the window with a raw publish that carries only Nats-Msg-Id: while the server
    // remembers the id it answers "duplicate"; once it stores the probe, the window is over.
    let Bus::JetStream(js_bus) = &bus else {
        unreachable!()
    };
    let js = async_nats::jetstream::new(js_bus.client().clone());
    let probe = || async {
        let ack = js
            .send_publish(
                "hazchem.ev.probe.old-1",
                async_nats::jetstream::message::PublishMessage::build()
                    .payload("probe".into())
                    .message_id(hazchem_bus::dedup_key("msa", "old-1")),
            )
            .await?
            .await?;
        anyhow::Ok(ack)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let forgotten_at = loop {
        let ack = probe().await?;
        if !ack.duplicate {
            break ack.sequence;
        }
        ensure!(ack.sequence == 1);
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the duplicate window never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ensure!(forgotten_at == 2);

    let again = bus
        .publish(event("msa", "vessel_arrival", "old-1", "again"))
        .await?;
    ensure!(
        again
            == Ack {
                sequence: 1,
                duplicate: true
            },
        "{again:?}"
    );
    let retyped = bus
        .publish(event("msa", "discharge", "old-1", "again"))
        .await?;
    ensure!(
        retyped
            == Ack {
                sequence: 1,
                duplicate: true
            },
        "{retyped:?}"
    );
    // Concurrent repeats after the window too.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.publish(event("msa", "alarm", "old-1", &format!("{i}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let ack = task.await??;
        ensure!(
            ack == Ack {
                sequence: 1,
                duplicate: true
            },
            "{ack:?}"
        );
    }
    let batch = bus
        .publish_many(vec![event("msa", "vessel_arrival", "old-1", "batch")])
        .await;
    ensure!(
        matches!(
            batch[0],
            Ok(Ack {
                sequence: 1,
                duplicate: true
            })
        ),
        "{batch:?}"
    );
    ensure!(
        bus.last_sequence().await? == 2,
        "only the raw probe was appended"
    );
    Ok(())
}

/// Live readers keep going across a server restart with no gaps or repeats, including one that
/// had received nothing yet (async-nats recreates such an ordered consumer from the beginning).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_readers_survive_a_restart() -> Result<()> {
    let mut env = Env::new(Kind::JetStream);
    let bus = env.bus().await?;
    publish_n(&bus, "pre", 5).await?;
    let mut all = bus.read(Start::Beginning, Filter::all());
    ensure!(seqs(&take(&mut all, 5).await?) == vec![1, 2, 3, 4, 5]);
    let mut new = bus.read(Start::New, Filter::all());
    new.ready().await?;
    let mut filtered = bus.read(Start::Beginning, Filter::subject("hazchem.ev.psb.>")?);
    filtered.ready().await?;

    env.server.as_mut().expect("server").restart();

    // The client reconnects by itself; publish once it has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ack = loop {
        match bus.publish(event("psb", "alarm", "post-0", "x")).await {
            Ok(ack) => break ack,
            Err(err) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no publish after restart: {err}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    ensure!(
        ack == Ack {
            sequence: 6,
            duplicate: false
        },
        "{ack:?}"
    );
    publish_n(&bus, "later", 3).await?;
    let got = seqs(
        &take(&mut all, 4)
            .await
            .context("reader from the beginning")?,
    );
    ensure!(got == vec![6, 7, 8, 9], "{got:?}");
    let got = seqs(&take(&mut new, 4).await.context("reader of new messages")?);
    ensure!(got == vec![6, 7, 8, 9], "{got:?}");
    let got = seqs(&take(&mut filtered, 1).await.context("filtered reader")?);
    ensure!(got == vec![6], "{got:?}");
    Ok(())
}
