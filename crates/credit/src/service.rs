//! The credit service's core: the registry in memory, kept up to date from the stream and durable in its
//! store, the queries over it, the review of credit decisions, and the events the service publishes.
//!
//! # Ingest
//!
//! The service reads the whole stream (`Filter::all()`) from its stored position, in order, in batches of
//! what is available. Each message either carries a fact ([`crate::grpc::fact_of`]) or only moves the
//! position. A batch is applied to the registry in memory (queries and reviews see it at once), then the
//! conflict warnings it raised are published (and acknowledged by the bus), then its facts and the new
//! position are written to the store in one atomic, flushed batch. A crash anywhere re-reads the batch,
//! and its warnings, having deterministic ids, deduplicate.
//!
//! # Start
//!
//! [`Credit::open`] loads the registry from the store. [`Credit::run`] first checks that the store belongs
//! to the stream (the event id at the stored position is the same; the stream is not shorter) and rebuilds
//! from sequence 1 if not, then follows the stream. A missing store is a rebuild.
//!
//! # Expiry
//!
//! Once caught up with the stream, a timer over the registry's schedule of term ends publishes
//! `credit_listing_expired` for each listing whose term ended while it was active, with a deterministic id.
//! Statuses never depend on that event (they follow from the rule); it tells the departments.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hazchem_admission::Policy;
use hazchem_bus::{Bus, Message};
use hazchem_domain::{Department, Uscc};
use hazchem_kit::EventSink;
use hazchem_kit::{FollowOptions, Progress, PublishError, SharedClock, SystemClock};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalogue::{Forbids, MeasureCatalogue};
use crate::config::CreditConfig;
use crate::error::{Error, Result};
use crate::grpc::convert;
use crate::registry::{
    CheckResult, Decision, Fact, ListQuery, ListingView, Outcome, Page, Recorded, Refusal,
    Registry, Rules,
};
use crate::store::CreditStore;

/// The most messages applied in one durable batch.
const MAX_BATCH: usize = 1000;

/// Why a review did not approve a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewError {
    /// The decision breaks a credit rule.
    Refused(Refusal),
    /// The registry did not reach the stream position in time.
    CatchingUp {
        position: u64,
        up_to: u64,
        waited: Duration,
    },
}

/// The credit service. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Credit {
    inner: Arc<Inner>,
    /// When term ends are due, and "now" for queries that name no instant. Clones carry it, so set it
    /// ([`Credit::with_clock`]) before cloning.
    clock: SharedClock,
    /// The ledger's key, to check the stream against its checkpoints at start.
    checkpoints: Option<hazchem_kit::VerifierKey>,
}

#[derive(Debug)]
struct Inner {
    config: CreditConfig,
    policy: Policy,
    rules: Arc<Rules>,
    registry: RwLock<Registry>,
    store: CreditStore,
    /// The last sequence applied in memory, whether the registry has caught up with the stream as it
    /// was at start, and why it stopped following.
    progress: Progress,
    /// When the next unannounced term ends (wakes the expiry timer when it changes).
    next_expiry: watch::Sender<Option<DateTime<Utc>>>,
}

/// The rules a configuration and a policy give.
pub fn rules_from(config: &CreditConfig, policy: &Policy) -> Result<Rules> {
    config.validate().map_err(Error::Config)?;
    let catalogue = match &config.measures {
        Some(path) => MeasureCatalogue::load(path)?,
        None => MeasureCatalogue::default_catalogue(),
    };
    let sanctioning = Department::ALL
        .into_iter()
        .filter(|d| policy.may_publish(&hazchem_pki::Principal::Department(*d), "penalty_decided"))
        .collect();
    Ok(Rules {
        terms: config.terms.by_type(),
        catalogue,
        authority: config.authority,
        sanctioning,
    })
}

/// A fingerprint of everything in the rules that shapes the registry, so that a store written under other
/// rules is rebuilt rather than trusted.
#[must_use]
pub fn rules_fingerprint(rules: &Rules) -> String {
    let mut text = format!("authority={:?};", rules.authority);
    for (t, r) in &rules.terms {
        text.push_str(&format!("{t}={}/{};", r.term_months, r.repair_after_months));
    }
    for d in &rules.sanctioning {
        text.push_str(&format!("s={d};"));
    }
    for m in rules.catalogue.measures() {
        let forbids = match &m.forbids {
            Forbids::Nothing => String::new(),
            Forbids::AllGrants => "*".to_owned(),
            Forbids::Kinds(k) => k.iter().map(|k| k.code()).collect::<Vec<_>>().join(","),
        };
        text.push_str(&format!("m={}:{forbids};", m.code));
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Credit {
    /// Opens the store and loads the registry from it, under the rules `config` and `policy` give.
    pub fn open(config: &CreditConfig, policy: Policy) -> Result<Credit> {
        let rules = Arc::new(rules_from(config, &policy)?);
        let store = CreditStore::open(&config.state, &rules_fingerprint(&rules))?;
        let registry = load(&store, rules.clone())?;
        tracing::info!(
            store = %config.state.display(),
            position = registry.position(),
            listings = registry.len(),
            "credit registry loaded"
        );
        let progress = Progress::new(registry.position());
        let (next_expiry, _) = watch::channel(registry.next_expiry());
        Ok(Credit {
            inner: Arc::new(Inner {
                config: config.clone(),
                policy,
                rules,
                registry: RwLock::new(registry),
                store,
                progress,
                next_expiry,
            }),
            clock: SystemClock::shared(),
            checkpoints: None,
        })
    }

    /// Takes the time from `clock` instead of the system clock (tests move a
    /// [`hazchem_kit::ManualClock`]). Set it before cloning: clones carry the clock they were made with.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the stream against the ledger's signed checkpoints before folding it (the ledger's key;
    /// see [`hazchem_kit::FollowOptions::checkpoints`]). Set it before cloning.
    #[must_use]
    pub fn with_checkpoints(mut self, key: Option<hazchem_kit::VerifierKey>) -> Self {
        self.checkpoints = key;
        self
    }

    /// The service's clock.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    #[must_use]
    pub fn config(&self) -> &CreditConfig {
        &self.inner.config
    }

    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.inner.rules
    }

    /// The last stream sequence applied.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.inner.progress.position()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The hot path: the listings of `enterprise` active at `at`, and their measures binding `department`.
    #[must_use]
    pub fn check(
        &self,
        enterprise: &Uscc,
        department: Department,
        at: DateTime<Utc>,
    ) -> CheckResult {
        self.read().check_at(enterprise, department, at)
    }

    /// Every listing of `enterprise` as known at `as_of`.
    #[must_use]
    pub fn history(&self, enterprise: &Uscc, as_of: DateTime<Utc>) -> Vec<ListingView> {
        self.read().history(enterprise, as_of)
    }

    /// A page of listings.
    #[must_use]
    pub fn list(&self, query: &ListQuery) -> Page {
        self.read().list(query)
    }

    /// How many listings and enterprises the registry holds.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        let r = self.read();
        (r.len(), r.enterprises())
    }

    /// Waits until the registry has applied the stream up to `sequence`, at most `timeout`.
    pub async fn wait_for(&self, sequence: u64, timeout: Duration) -> bool {
        self.inner
            .progress
            .wait_for(sequence, timeout)
            .await
            .is_ok()
    }

    /// Reviews a credit decision once the registry includes the stream up to `up_to` (the guard's rule).
    pub async fn review(&self, decision: &Decision, up_to: u64) -> Result<(), ReviewError> {
        let started = Instant::now();
        let timeout = self.inner.config.review_timeout;
        if !self.wait_for(up_to, timeout).await {
            return Err(ReviewError::CatchingUp {
                position: self.position(),
                up_to,
                waited: started.elapsed(),
            });
        }
        self.read().review(decision).map_err(ReviewError::Refused)
    }

    /// Applies facts directly, without the stream and without the store (benchmarks and tests of the
    /// queries): each must come after the registry's position; nothing is persisted or published.
    pub fn apply_all(&self, facts: impl IntoIterator<Item = Recorded>) -> Vec<Outcome> {
        let mut registry = self.write();
        let outcomes = facts.into_iter().map(|f| registry.apply(f)).collect();
        let position = registry.position();
        drop(registry);
        self.inner.progress.advance(position);
        outcomes
    }

    /// Follows the stream until `shutdown` (with the kit's [`hazchem_kit::follow`]: a store that belongs to
    /// another stream is rebuilt from sequence 1): ingests it into the registry and the store, raises
    /// conflict warnings and announces term ends through `sink` (as service `credit`).
    pub async fn run(&self, bus: Bus, sink: EventSink, shutdown: CancellationToken) -> Result<()> {
        let stop_expiries = shutdown.child_token();
        let expiries = {
            let credit = self.clone();
            let sink = sink.clone();
            let stop = stop_expiries.clone();
            tokio::spawn(async move { credit.announce_expiries(sink, stop).await })
        };
        let follower = Follower {
            credit: self.clone(),
            sink,
            shutdown: shutdown.clone(),
        };
        let options = FollowOptions {
            max_batch: MAX_BATCH,
            checkpoints: self.checkpoints.clone(),
            ..FollowOptions::default()
        };
        let result =
            hazchem_kit::follow(&follower, &bus, &options, &self.inner.progress, &shutdown)
                .await
                .map_err(|e| Error::Follow(Box::new(e)));
        stop_expiries.cancel();
        let _ = expiries.await;
        result
    }

    /// Applies a batch in memory, publishes its warnings, and stores it. False if shut down before the
    /// batch was stored (it is read again on the next start). The kit's follow loop hands over
    /// consecutive messages after the registry's position.
    async fn ingest_batch(
        &self,
        batch: Vec<Message>,
        sink: &EventSink,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        let mut stored = Vec::new();
        let mut conflicts = Vec::new();
        let mut anchor = String::new();
        let position = {
            let mut registry = self.write();
            for message in &batch {
                anchor = message.id().to_owned();
                let recorded = match convert::fact_of(message) {
                    Ok(Some(recorded)) => recorded,
                    Ok(None) => {
                        registry.advance(message.sequence);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(sequence = message.sequence, subject = %message.subject, %error, "a message the credit registry reads is unreadable; skipped");
                        registry.advance(message.sequence);
                        continue;
                    }
                };
                if !matches!(recorded.fact, Fact::Grant(_)) {
                    stored.push(recorded.clone());
                }
                match registry.apply(recorded) {
                    Outcome::Applied | Outcome::Skipped => {}
                    Outcome::Refused(refusal) => tracing::warn!(
                        sequence = message.sequence,
                        event_id = message.id(),
                        reason = refusal.reason(),
                        %refusal,
                        "a credit decision on the record breaks the credit rules; ignored"
                    ),
                    Outcome::Conflict(conflict) => conflicts.push(conflict),
                }
            }
            let next = registry.next_expiry();
            self.inner.next_expiry.send_if_modified(|current| {
                let changed = *current != next;
                *current = next;
                changed
            });
            registry.position()
        };
        // Queries and reviews see the batch at once; the kit records it again once stored.
        self.inner.progress.advance(position);
        for conflict in &conflicts {
            let event =
                convert::conflict_warning(conflict, self.inner.config.conflict_acknowledge_hours);
            let what = format!("credit-conflict warning {}", event.id);
            if !publish_until_done(sink, &event, &what, shutdown).await {
                return Ok(false);
            }
            tracing::info!(
                warning_id = %event.id,
                grant = %conflict.grant.event_id,
                enterprise = %conflict.grant.holder,
                "credit conflict: warning raised"
            );
        }
        if anchor.is_empty() {
            return Ok(true);
        }
        self.inner.store.append(&stored, position, &anchor).await?;
        Ok(true)
    }

    /// Publishes `credit_listing_expired` for every term that ended, once caught up with the stream. An
    /// announcement is published once per run; the listing stops being due when its event comes back
    /// through the stream.
    async fn announce_expiries(&self, sink: EventSink, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = self.inner.progress.wait_caught_up() => {}
        }
        let mut next_expiry = self.inner.next_expiry.subscribe();
        let interval = self.inner.config.expiry_interval;
        let mut announced: BTreeSet<String> = BTreeSet::new();
        loop {
            next_expiry.mark_unchanged();
            let now = self.clock.now();
            let due = self.write().due_expiries(now);
            announced.retain(|id| due.iter().any(|d| &d.listing_id == id));
            for d in &due {
                if announced.contains(&d.listing_id) {
                    continue;
                }
                let basis = self
                    .read()
                    .listing(&d.listing_id)
                    .map(|l| l.legal_basis.clone());
                let Some(basis) = basis else { continue };
                let event = convert::expiry_event(d, &basis);
                match sink.publish(&event).await {
                    Ok(accepted) => {
                        announced.insert(d.listing_id.clone());
                        tracing::info!(
                            listing = %d.listing_id,
                            event_id = %accepted.event_id,
                            duplicate = accepted.duplicate,
                            "listing term ended: announced"
                        );
                    }
                    Err(PublishError::IdReused(_)) => {
                        announced.insert(d.listing_id.clone());
                    }
                    Err(error) => {
                        tracing::warn!(listing = %d.listing_id, %error, "cannot announce the end of a listing's term; will retry");
                    }
                }
            }
            let now = self.clock.now();
            let wait = match self.read().next_expiry() {
                Some(next) if next > now => (next - now).to_std().unwrap_or(interval).min(interval),
                // Announced, waiting for the announcements to come back through the stream.
                Some(_) => Duration::from_millis(500),
                None => interval,
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                _ = next_expiry.changed() => {}
            }
        }
    }
}

/// The credit registry as a projection of the stream, with what its batches publish through.
struct Follower {
    credit: Credit,
    sink: EventSink,
    shutdown: CancellationToken,
}

impl hazchem_kit::Projection for Follower {
    type Error = Error;

    fn name(&self) -> &'static str {
        "credit"
    }

    fn position(&self) -> u64 {
        self.credit.read().position()
    }

    /// The store keeps the id of the message at its position.
    fn matches(&self, message: &Message) -> Result<bool> {
        let anchor = self.credit.inner.store.anchor()?;
        Ok(anchor.is_some_and(|a| a == message.id()))
    }

    async fn reset(&self) -> Result<()> {
        self.credit.inner.store.reset()?;
        *self.credit.write() = Registry::new(self.credit.inner.rules.clone());
        self.credit.inner.progress.advance(0);
        Ok(())
    }

    /// A batch shut down in the middle (its warnings not all published) is not stored: it is read again
    /// on the next start, and the warnings it published deduplicate.
    async fn apply(&self, batch: Vec<Message>) -> Result<()> {
        self.credit
            .ingest_batch(batch, &self.sink, &self.shutdown)
            .await
            .map(|_stored| ())
    }
}

/// Publishes a deterministic event until the bus has it (accepted, or a duplicate of what this service
/// published before). Ids are scoped by publisher, so nobody else can hold this id: the same id with other
/// bytes can only be this service's own earlier, different event, which is an alarm, logged as an error,
/// never taken as done silently. False if shut down first.
async fn publish_until_done(
    sink: &EventSink,
    event: &hazchem_proto::v1::Event,
    what: &str,
    shutdown: &CancellationToken,
) -> bool {
    match sink.publish_retrying(event, shutdown).await {
        None => false,
        // Another event under its id: the sink raised the alarm; the record keeps the earlier event.
        Some(Ok(_) | Err(PublishError::IdReused(_))) => true,
        Some(Err(error)) => {
            // Refused by admission (a policy without `warning_raised` for `credit`): not retriable.
            tracing::error!(%what, %error, "refused by the gateway's admission; not published");
            true
        }
    }
}

/// The registry a store holds.
fn load(store: &CreditStore, rules: Arc<Rules>) -> Result<Registry> {
    let stored = store.load()?;
    let mut registry = Registry::new(rules);
    for fact in stored.facts {
        registry.apply(fact);
    }
    registry.advance(stored.position);
    Ok(registry)
}
