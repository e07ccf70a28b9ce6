//! The warning service: follows the stream into [`Derived`] (the rules' state and the warnings),
//! publishes what the rules derive, answers department commands (acknowledge, close) by publishing their
//! events after checking who may act, and escalates warnings unacknowledged by their deadline.
//!
//! Each batch is folded in memory, then the events the rules derived are published (each acknowledged
//! by the bus; deterministic ids make a re-derived event a duplicate), then the state and the position
//! are written in one atomic, flushed batch. A crash anywhere re-reads the batch.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hazchem_admission::Policy;
use hazchem_bus::{Bus, Message};
use hazchem_domain::{Catalogue, Department};
use hazchem_kit::{EventSink, Progress, SharedClock, SystemClock};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use tokio_util::sync::CancellationToken;

use crate::config::WarningConfig;
use crate::error::{Error, Result};
use crate::rules::{Level, RuleSet};
use crate::state::{self, Context, Derived, Outbound, State, Warning};
use crate::store::Store;

/// Which warnings to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarningQuery {
    pub level: Option<Level>,
    pub state: Option<State>,
    /// Addressed to this department.
    pub department: Option<Department>,
    pub enterprise: Option<String>,
    pub rule_id: Option<String>,
    pub raised_from: Option<DateTime<Utc>>,
    pub raised_until: Option<DateTime<Utc>>,
    /// Warnings with ids after this one (pagination).
    pub after: Option<String>,
    pub limit: usize,
}

/// The warning service. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Warnings {
    inner: Arc<Inner>,
    clock: SharedClock,
    /// The ledger's key, to check the stream against its checkpoints at start.
    checkpoints: Option<hazchem_kit::VerifierKey>,
}

#[derive(Debug)]
struct Inner {
    config: WarningConfig,
    rules: RuleSet,
    catalogue: Catalogue,
    policy: Policy,
    store: Store,
    state: RwLock<Derived>,
    progress: Progress,
    commands: tokio::sync::Mutex<()>,
    bus: Bus,
    sink: EventSink,
}

impl Warnings {
    /// Loads the rules and the catalogue the configuration names (or the embedded ones), then opens.
    pub fn from_config(
        config: &WarningConfig,
        policy: Policy,
        bus: Bus,
        sink: EventSink,
    ) -> Result<Warnings> {
        let rules = match &config.rules {
            Some(path) => RuleSet::load(path)?,
            None => RuleSet::default_rules(),
        };
        let catalogue = match &config.catalogue {
            Some(path) => Catalogue::load(path)
                .map_err(|e| Error::Config(format!("warning.catalogue: {e}")))?,
            None => Catalogue::sample(),
        };
        Warnings::open(config, rules, catalogue, policy, bus, sink)
    }

    /// Opens the store (emptied when derived under other rules or corrupt: it is rebuilt from the
    /// stream). The projection follows the stream once [`Warnings::run`] runs.
    pub fn open(
        config: &WarningConfig,
        rules: RuleSet,
        catalogue: Catalogue,
        policy: Policy,
        bus: Bus,
        sink: EventSink,
    ) -> Result<Warnings> {
        let fingerprint = format!("{}/{}", rules.fingerprint(), catalogue.version());
        let store = Store::open(&config.store, &fingerprint)?;
        let derived = match store.load() {
            Ok(d) => d,
            Err(Error::Corrupt(problem)) => {
                tracing::warn!(store = %config.store.display(), %problem, "the warning store is corrupt; rebuilding it from the stream");
                store.clear()?;
                Derived::default()
            }
            Err(other) => return Err(other),
        };
        tracing::info!(store = %config.store.display(), applied = derived.applied, warnings = derived.warnings.len(), "warning store loaded");
        let progress = Progress::new(derived.applied);
        Ok(Warnings {
            inner: Arc::new(Inner {
                config: config.clone(),
                rules,
                catalogue,
                policy,
                store,
                state: RwLock::new(derived),
                progress,
                commands: tokio::sync::Mutex::new(()),
                bus,
                sink,
            }),
            clock: SystemClock::shared(),
            checkpoints: None,
        })
    }

    /// Takes the time from `clock` (tests move a [`hazchem_kit::ManualClock`]). Set it before cloning.
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

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn rules(&self) -> &RuleSet {
        &self.inner.rules
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The last stream sequence the projection includes.
    pub fn applied(&self) -> u64 {
        self.inner.progress.position()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Derived> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows the stream and checks deadlines until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        let tasks = shutdown.child_token();
        let escalations = tokio::spawn(self.clone().escalation_loop(tasks.clone()));
        let options = hazchem_kit::FollowOptions {
            max_batch: self.inner.config.max_batch,
            checkpoints: self.checkpoints.clone(),
            ..hazchem_kit::FollowOptions::default()
        };
        let result = hazchem_kit::follow(
            self,
            &self.inner.bus,
            &options,
            &self.inner.progress,
            &tasks,
        )
        .await
        .map_err(|e| Error::Follow(Box::new(e)));
        tasks.cancel();
        let _ = escalations.await;
        result
    }

    async fn wait_applied(&self, sequence: u64) -> Result<()> {
        self.inner
            .progress
            .wait_for(sequence, self.inner.config.command_timeout)
            .await
            .map_err(|e| Error::Unavailable(format!("{e}; retry")))
    }

    /// Waits until the projection includes everything on the stream now.
    pub async fn caught_up(&self) -> Result<()> {
        let last = self.inner.bus.last_sequence().await?;
        self.wait_applied(last).await
    }

    /// A warning by id.
    pub fn warning(&self, id: &str) -> Option<Warning> {
        self.read().warnings.get(id).cloned()
    }

    /// Whether `principal` may see `warning`: addressed to it, or readable by the read policy (as the
    /// `warning_raised` event, with the addressed departments as its audience).
    pub fn visible(&self, principal: &Principal, warning: &Warning) -> bool {
        if let Principal::Department(d) = principal
            && warning.is_addressed(*d)
        {
            return true;
        }
        self.inner.policy.may_read(
            principal,
            "warning_raised",
            None,
            v1::DataClassification::Shared,
            &warning.addressed,
        )
    }

    /// Warnings matching `query` that `principal` may see, by id; and whether more follow.
    pub fn warnings(&self, principal: &Principal, query: &WarningQuery) -> (Vec<Warning>, bool) {
        use std::ops::Bound;
        let state = self.read();
        let lower = match &query.after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Unbounded,
        };
        let mut matching = state
            .warnings
            .range((lower, Bound::Unbounded))
            .map(|(_, w)| w)
            .filter(|w| self.visible(principal, w))
            .filter(|w| query.level.is_none_or(|l| w.level == l))
            .filter(|w| query.state.is_none_or(|s| w.state() == s))
            .filter(|w| query.department.is_none_or(|d| w.is_addressed(d)))
            .filter(|w| {
                query
                    .enterprise
                    .as_ref()
                    .is_none_or(|u| w.enterprise.as_ref().is_some_and(|(e, _)| e == u))
            })
            .filter(|w| query.rule_id.as_ref().is_none_or(|r| &w.rule_id == r))
            .filter(|w| query.raised_from.is_none_or(|t| w.raised_at >= t))
            .filter(|w| query.raised_until.is_none_or(|t| w.raised_at < t));
        let page: Vec<Warning> = matching.by_ref().take(query.limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// `department` acknowledges `warning_id`; answers the warning after the acknowledgement.
    pub async fn acknowledge(
        &self,
        department: Department,
        warning_id: &str,
        note: String,
    ) -> Result<Warning> {
        let _serial = self.inner.commands.lock().await;
        self.caught_up().await?;
        let now = self.clock.now();
        {
            let w = self.checked(department, warning_id, "acknowledge")?;
            if w.acknowledged.contains(&department) {
                return Err(Error::AlreadyAcknowledged {
                    warning_id: warning_id.to_owned(),
                    department,
                });
            }
        }
        let event = state::acknowledged_event(warning_id, now, department, note);
        self.publish(&event).await?;
        self.warning(warning_id)
            .ok_or_else(|| Error::Corrupt(format!("warning {warning_id} vanished")))
    }

    /// `department` closes `warning_id`.
    pub async fn close(
        &self,
        department: Department,
        warning_id: &str,
        reason: String,
    ) -> Result<Warning> {
        let _serial = self.inner.commands.lock().await;
        self.caught_up().await?;
        let now = self.clock.now();
        self.checked(department, warning_id, "close")?;
        let event = state::closed_event(warning_id, now, Some(department), reason, None);
        self.publish(&event).await?;
        self.warning(warning_id)
            .ok_or_else(|| Error::Corrupt(format!("warning {warning_id} vanished")))
    }

    /// The warning, if it exists, is visible to, addressed to `department` and open.
    fn checked(
        &self,
        department: Department,
        warning_id: &str,
        action: &'static str,
    ) -> Result<Warning> {
        let not_found = || Error::NotFound {
            warning_id: warning_id.to_owned(),
        };
        let w = self.warning(warning_id).ok_or_else(not_found)?;
        if !self.visible(&Principal::Department(department), &w) {
            return Err(not_found());
        }
        if w.closed.is_some() {
            return Err(Error::Closed {
                warning_id: warning_id.to_owned(),
            });
        }
        if !w.is_addressed(department) {
            return Err(Error::NotAddressed {
                warning_id: warning_id.to_owned(),
                department,
                action,
                addressed: w.addressed.clone(),
            });
        }
        Ok(w)
    }

    /// Publishes an event and waits until the projection has applied it.
    async fn publish(&self, event: &v1::Event) -> Result<u64> {
        let accepted = self
            .inner
            .sink
            .publish(event)
            .await
            .map_err(Error::Publish)?;
        tracing::info!(event_id = %event.id, sequence = accepted.sequence, duplicate = accepted.duplicate, "warning event published");
        self.wait_applied(accepted.sequence).await?;
        Ok(accepted.sequence)
    }

    /// Escalates every warning past its deadline (and due); returns how many were published.
    pub async fn raise_escalations(&self) -> Result<usize> {
        let _serial = self.inner.commands.lock().await;
        self.caught_up().await?;
        let now = self.clock.now();
        let due: Vec<v1::Event> = self
            .read()
            .warnings
            .values()
            .filter(|w| w.escalation_due(now))
            .map(|w| state::escalated_event(w, &self.inner.rules, now))
            .collect();
        let mut raised = 0;
        for event in due {
            match self.publish(&event).await {
                Ok(_) => raised += 1,
                Err(Error::Publish(hazchem_kit::PublishError::IdReused(_))) => {}
                Err(error) => {
                    tracing::error!(event_id = %event.id, %error, "escalating a warning failed; retrying at the next check");
                }
            }
        }
        Ok(raised)
    }

    async fn escalation_loop(self, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = self.inner.progress.wait_caught_up() => {}
        }
        let mut tick = tokio::time::interval(self.inner.config.escalation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.raise_escalations().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalations = n, "warnings escalated"),
                Err(error) => {
                    tracing::warn!(%error, "checking warning deadlines failed; retrying at the next check")
                }
            }
        }
    }

    /// Publishes a derived event, retrying what may pass later; an event the bus holds already under
    /// its id (a department closed the warning first) is done.
    async fn publish_derived(&self, outbound: &Outbound) -> Result<()> {
        let event = outbound.event();
        let mut wait = Duration::from_millis(100);
        for _ in 0..8 {
            match self.inner.sink.publish(event).await {
                Ok(accepted) => {
                    if !accepted.duplicate {
                        tracing::info!(event_id = %event.id, sequence = accepted.sequence, "warning rule: {}", match outbound { Outbound::Raise(_) => "raised", Outbound::Close(_) => "cleared" });
                    }
                    return Ok(());
                }
                Err(hazchem_kit::PublishError::IdReused(_)) => return Ok(()),
                Err(hazchem_kit::PublishError::Retry(status)) => {
                    tracing::warn!(event_id = %event.id, %status, "publishing a derived warning event failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(hazchem_kit::PublishError::Refused(status)) => {
                    // Refused by admission: a bug in the rules, not a passing condition; skip it.
                    tracing::error!(event_id = %event.id, %status, "a derived warning event was refused; skipped");
                    return Ok(());
                }
            }
        }
        Err(Error::Unavailable(format!(
            "publishing derived warning event {} kept failing",
            event.id
        )))
    }
}

/// The warning service's state is a projection of the stream, followed by the kit.
impl hazchem_kit::Projection for Warnings {
    type Error = Error;

    fn name(&self) -> &'static str {
        "warning"
    }

    fn position(&self) -> u64 {
        self.read().applied
    }

    fn matches(&self, message: &Message) -> Result<bool> {
        Ok(self.read().anchor == message.subject)
    }

    async fn reset(&self) -> Result<()> {
        self.inner.store.clear()?;
        *self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Derived::default();
        Ok(())
    }

    async fn apply(&self, batch: Vec<Message>) -> Result<()> {
        let mut dirty = BTreeSet::new();
        let mut out = Vec::new();
        let snapshot = {
            let mut state = self
                .inner
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let cx = Context {
                rules: &self.inner.rules,
                catalogue: &self.inner.catalogue,
            };
            for message in &batch {
                state.apply_message(message, &cx, &mut dirty, &mut out);
            }
            state.clone_for(&dirty)
        };
        for outbound in &out {
            self.publish_derived(outbound).await?;
        }
        self.inner.store.save(&snapshot, &dirty).await
    }
}
