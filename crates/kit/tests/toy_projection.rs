//! A toy projection built with the kit: messages counted per publisher in a sled store. It shows what a
//! new service writes (the four methods of `Projection`) and what `follow` gives it: resuming from the
//! stored position, the startup check that rebuilds a store from another stream (or refuses it),
//! progress for waiters, and shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hazchem_bus::{Bus, Message, Outgoing};
use hazchem_kit::{FollowOptions, OnMismatch, Progress, Projection, follow};
use tokio_util::sync::CancellationToken;

/// Counts per publisher; `p` holds the position and the subject at it.
struct Counter {
    db: sled::Db,
    position: AtomicU64,
    on_mismatch: OnMismatch,
}

impl Counter {
    fn open(dir: &std::path::Path, on_mismatch: OnMismatch) -> Counter {
        let db = hazchem_bus::open_sled(dir).unwrap();
        let position = db
            .get("p")
            .unwrap()
            .map_or(0, |v| u64::from_be_bytes(v[..8].try_into().unwrap()));
        Counter {
            db,
            position: AtomicU64::new(position),
            on_mismatch,
        }
    }

    fn count(&self, publisher: &str) -> u64 {
        self.db
            .get(format!("c/{publisher}"))
            .unwrap()
            .map_or(0, |v| u64::from_be_bytes(v[..].try_into().unwrap()))
    }
}

impl Projection for Counter {
    type Error = sled::Error;

    fn name(&self) -> &'static str {
        "toy"
    }

    fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    fn matches(&self, message: &Message) -> Result<bool, sled::Error> {
        Ok(self
            .db
            .get("p")?
            .is_some_and(|v| &v[8..] == message.subject.as_bytes()))
    }

    fn on_mismatch(&self) -> OnMismatch {
        self.on_mismatch
    }

    async fn reset(&self) -> Result<(), sled::Error> {
        self.db.clear()?;
        hazchem_bus::flush_sled(&self.db).await?;
        self.position.store(0, Ordering::Release);
        Ok(())
    }

    async fn apply(&self, batch: Vec<Message>) -> Result<(), sled::Error> {
        let mut write = sled::Batch::default();
        let mut counts = std::collections::BTreeMap::new();
        for message in &batch {
            *counts.entry(message.publisher().to_owned()).or_insert(0) += 1;
        }
        for (publisher, n) in counts {
            let total = self.count(&publisher) + n;
            write.insert(
                format!("c/{publisher}").as_bytes(),
                &total.to_be_bytes()[..],
            );
        }
        let last = batch.last().expect("never empty");
        let mut p = last.sequence.to_be_bytes().to_vec();
        p.extend_from_slice(last.subject.as_bytes());
        write.insert("p", p);
        self.db.apply_batch(write)?;
        hazchem_bus::flush_sled(&self.db).await?;
        self.position.store(last.sequence, Ordering::Release);
        Ok(())
    }
}

async fn publish(bus: &Bus, publisher: &str, ids: std::ops::Range<u32>) {
    for i in ids {
        bus.publish(Outgoing::event(publisher, "alarm", &format!("e{i}"), "x").unwrap())
            .await
            .unwrap();
    }
}

/// Follows until the projection reaches `sequence`, then shuts it down.
async fn follow_to(counter: &Counter, bus: &Bus, sequence: u64) -> Progress {
    let progress = Progress::new(counter.position());
    let shutdown = CancellationToken::new();
    let options = FollowOptions::default();
    let following = follow(counter, bus, &options, &progress, &shutdown);
    let waiting = async {
        progress
            .wait_for(sequence, Duration::from_secs(10))
            .await
            .unwrap();
        progress.wait_caught_up().await;
        shutdown.cancel();
    };
    let (followed, ()) = tokio::join!(following, waiting);
    followed.unwrap();
    progress
}

#[tokio::test]
async fn a_toy_projection_follows_resumes_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
    publish(&bus, "psb", 0..30).await;
    publish(&bus, "fire", 0..12).await;

    let store = dir.path().join("toy");
    let counter = Counter::open(&store, OnMismatch::Rebuild);
    let progress = follow_to(&counter, &bus, 42).await;
    assert!(progress.state().caught_up);
    assert_eq!(
        progress.state().stopped.as_deref(),
        Some("the service is shutting down")
    );
    assert_eq!((counter.count("psb"), counter.count("fire")), (30, 12));
    drop(counter);

    // Reopened: it resumes from its position, folding only what is new.
    publish(&bus, "fire", 12..20).await;
    let counter = Counter::open(&store, OnMismatch::Rebuild);
    assert_eq!(counter.position(), 42);
    follow_to(&counter, &bus, 50).await;
    assert_eq!((counter.count("psb"), counter.count("fire")), (30, 20));
    drop(counter);

    // The same store against another stream: rebuilt from sequence 1, never trusted.
    let other = Bus::embedded(&dir.path().join("other")).await.unwrap();
    publish(&other, "eeb", 0..60).await;
    let counter = Counter::open(&store, OnMismatch::Rebuild);
    follow_to(&counter, &other, 60).await;
    assert_eq!(
        (
            counter.count("psb"),
            counter.count("fire"),
            counter.count("eeb")
        ),
        (0, 0, 60)
    );
    drop(counter);

    // A projection that refuses a foreign store stops, saying why, and keeps it as it was.
    let counter = Counter::open(&store, OnMismatch::Refuse);
    let progress = Progress::new(counter.position());
    let error = follow(
        &counter,
        &bus,
        &FollowOptions::default(),
        &progress,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("does not belong to this stream"),
        "{error}"
    );
    assert!(progress.state().stopped.is_some());
    assert_eq!(counter.count("eeb"), 60);
}
