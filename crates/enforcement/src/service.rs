//! The enforcement service: follows the stream into its projection, decides commands, publishes their events
//! through the gateway's admission, and raises escalations when deadlines pass.
//!
//! # Commands
//!
//! Commands are serialised (one at a time). For each: wait until the projection includes everything on the
//! stream up to the stream's last sequence when the command started; answer a repeated command id from the
//! projection (same command: the task, no new event; different command: `ALREADY_EXISTS`); [`decide`]; publish
//! the event through the [`EventSink`] (as service `enforcement`), with an id derived from the department
//! and the command id, so the bus's forever-deduplication also protects retries after a restart; wait until
//! the projection has applied it; answer the task. A refused command publishes nothing.
//!
//! # The projection
//!
//! One reader follows the whole stream from the store's position (skipping, by subject, what it does not
//! need). Each batch of messages is applied in memory and written to sled in one atomic batch with the new
//! position, then flushed, and only then does the position advance for waiting commands. On start, a store
//! whose position is beyond the stream's end, or whose last task event is not the stream's message at that
//! sequence, belongs to another stream: it is cleared and rebuilt from sequence 1.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use hazchem_bus::Bus;
use hazchem_domain::{Department, Uscc};
use hazchem_kit::{EventSink, SharedClock, SystemClock};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::EnforcementConfig;
use crate::draw::SEED_LEN;
use crate::error::{Error, Result};
use crate::projection::{Key, Projection};
use crate::registers::{Registers, RiskFacts};
use crate::store::Store;
use crate::task::{
    self, Change, DrawMaterial, DrawSource, EscalationReason, Request, Task, TaskEvent, TaskState,
    decide,
};
use crate::wire;

/// The id of the event a command becomes: the same for the same department and command id, forever.
pub fn command_event_id(department: Department, command_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"hazchem-enforcement-command\0")
        .chain_update(department.code().as_bytes())
        .chain_update([0])
        .chain_update(command_id.as_bytes())
        .finalize();
    format!("task-cmd-{}", hex::encode(&digest[..16]))
}

/// The id of an escalation: one per task and reason, forever.
pub fn escalation_event_id(task_id: &str, reason: EscalationReason) -> String {
    let digest = Sha256::new()
        .chain_update(b"hazchem-enforcement-escalation\0")
        .chain_update(task_id.as_bytes())
        .chain_update([0])
        .chain_update(reason.name().as_bytes())
        .finalize();
    format!("task-esc-{}", hex::encode(&digest[..16]))
}

/// Which tasks to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Tasks the department leads, takes part in, or (public security) has a case transferred in.
    pub department: Option<Department>,
    pub state: Option<TaskState>,
    pub target: Option<Uscc>,
    pub overdue_only: bool,
    /// Tasks with ids after this one (pagination).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// The enforcement service. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Enforcement {
    inner: Arc<Inner>,
    /// "Now" for commands, deadlines and escalations. Clones carry it, so set it
    /// ([`Enforcement::with_clock`]) before cloning.
    clock: SharedClock,
    /// The ledger's key, to check the stream against its checkpoints at start.
    checkpoints: Option<hazchem_kit::VerifierKey>,
}

#[derive(Debug)]
struct Inner {
    config: EnforcementConfig,
    registers: Registers,
    store: Store,
    state: RwLock<Projection>,
    progress: hazchem_kit::Progress,
    commands: tokio::sync::Mutex<()>,
    bus: Bus,
    sink: EventSink,
}

/// Draw material from the registers and the record's risk facts, with a seed from the OS's generator.
struct LiveDraws<'a> {
    registers: &'a Registers,
    risk: &'a std::collections::BTreeMap<String, RiskFacts>,
}

impl DrawSource for LiveDraws<'_> {
    fn material(&self, _task: &Task, now: DateTime<Utc>) -> DrawMaterial {
        let mut seed = vec![0u8; SEED_LEN];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        DrawMaterial {
            seed,
            candidates: self.registers.candidates(self.risk, now),
            registers: self.registers.inspectors.clone(),
        }
    }
}

impl Enforcement {
    /// Loads the registers the configuration names (or the embedded sample), then [`Enforcement::open`]s.
    pub async fn from_config(
        config: &EnforcementConfig,
        bus: Bus,
        sink: EventSink,
    ) -> Result<Enforcement> {
        let registers = match &config.registers {
            Some(path) => Registers::load(path)?,
            None => Registers::default_registers(),
        };
        Enforcement::open(config, registers, bus, sink).await
    }

    /// Opens the store and checks it against the stream (rebuilding it if it belongs to another stream).
    /// The projection follows the stream once [`Enforcement::run`] runs.
    pub async fn open(
        config: &EnforcementConfig,
        registers: Registers,
        bus: Bus,
        sink: EventSink,
    ) -> Result<Enforcement> {
        let store = Store::open(&config.store)?;
        // Derived state: a store that does not load, or does not match the stream, is rebuilt.
        let projection = match store.load() {
            Ok(p) => p,
            Err(Error::Corrupt(problem)) => {
                tracing::warn!(store = %config.store.display(), %problem, "the enforcement store is corrupt; rebuilding it from the stream");
                store.clear()?;
                Projection::default()
            }
            Err(other) => return Err(other),
        };
        tracing::info!(
            store = %config.store.display(),
            applied = projection.applied,
            tasks = projection.tasks.len(),
            "enforcement store loaded"
        );
        let progress = hazchem_kit::Progress::new(projection.applied);
        Ok(Enforcement {
            inner: Arc::new(Inner {
                config: config.clone(),
                registers,
                store,
                state: RwLock::new(projection),
                progress,
                commands: tokio::sync::Mutex::new(()),
                bus,
                sink,
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
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The registers draws draw from.
    pub fn registers(&self) -> &Registers {
        &self.inner.registers
    }

    /// The last stream sequence the projection includes.
    pub fn applied(&self) -> u64 {
        self.inner.progress.position()
    }

    /// Follows the stream (with the kit's [`hazchem_kit::follow`]; the store is checked against the stream
    /// first, and rebuilt if it belongs to another) and checks deadlines until `shutdown`. Returns an error
    /// if the projection cannot be stored (it then stops, and commands answer UNAVAILABLE).
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

    /// Waits until the projection includes sequence `sequence`.
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

    /// Decides and records one command; returns the task as it is after it.
    pub async fn execute(&self, request: Request) -> Result<Task> {
        let request = Request {
            command: request.command.normalised(request.actor),
            ..request
        };
        let _serial = self.inner.commands.lock().await;
        self.caught_up().await?;
        let now = self.clock.now();
        let (event, basis) = {
            let state = self.inner.state.read().expect("not poisoned");
            if let Some(done) = state
                .commands
                .get(&(request.actor, request.command_id.clone()))
            {
                if done.task_id == request.task_id && done.command == request.command {
                    let task = state.tasks.get(&done.task_id).cloned().ok_or_else(|| {
                        Error::Corrupt(format!("command {} names a missing task", done.event_id))
                    })?;
                    tracing::debug!(command_id = %request.command_id, task_id = %task.id, "command repeated; answered from the record");
                    return Ok(task);
                }
                return Err(Error::CommandIdReused {
                    department: request.actor,
                    command_id: request.command_id.clone(),
                    task_id: done.task_id.clone(),
                });
            }
            let task = state.tasks.get(&request.task_id);
            let draws = LiveDraws {
                registers: &self.inner.registers,
                risk: &state.risk,
            };
            let event = decide(task, &request, now, &draws)?;
            let basis = match (&event.change, task) {
                (Change::Opened(open), _) => open.legal_basis.clone(),
                (_, Some(task)) => task.legal_basis.clone(),
                (_, None) => unreachable!("decide refuses commands on missing tasks"),
            };
            (event, basis)
        };
        let event_id = command_event_id(request.actor, &request.command_id);
        self.publish(&event, &event_id, &basis).await?;
        let state = self.inner.state.read().expect("not poisoned");
        state.tasks.get(&request.task_id).cloned().ok_or_else(|| {
            Error::Corrupt(format!(
                "event {event_id} was applied but task {} is missing",
                request.task_id
            ))
        })
    }

    /// Publishes a task event and waits until the projection has applied it.
    async fn publish(
        &self,
        event: &TaskEvent,
        event_id: &str,
        basis: &task::LegalBasis,
    ) -> Result<u64> {
        let envelope = wire::envelope(event, event_id, basis);
        let accepted = self
            .inner
            .sink
            .publish(&envelope)
            .await
            .map_err(Error::Publish)?;
        tracing::info!(
            event_id,
            task_id = %event.task_id,
            sequence = accepted.sequence,
            duplicate = accepted.duplicate,
            "task event published"
        );
        self.wait_applied(accepted.sequence).await?;
        Ok(accepted.sequence)
    }

    /// A task by id.
    pub fn task(&self, task_id: &str) -> Option<Task> {
        self.inner
            .state
            .read()
            .expect("not poisoned")
            .tasks
            .get(task_id)
            .cloned()
    }

    /// Tasks matching `query`, by id; and whether more follow.
    pub fn tasks(&self, query: &TaskQuery, now: DateTime<Utc>) -> (Vec<Task>, bool) {
        use std::ops::Bound;
        let state = self.inner.state.read().expect("not poisoned");
        let lower = match &query.after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Unbounded,
        };
        let mut matching = state
            .tasks
            .range((lower, Bound::Unbounded))
            .map(|(_, t)| t)
            .filter(|t| query.department.is_none_or(|d| t.involves(d)))
            .filter(|t| query.state.is_none_or(|s| t.state == s))
            .filter(|t| query.target.as_ref().is_none_or(|u| t.has_target(u)))
            .filter(|t| !query.overdue_only || t.is_overdue(now));
        let page: Vec<Task> = matching.by_ref().take(query.limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// Raises every escalation that is due now and not raised yet; returns how many were published.
    pub async fn raise_escalations(&self) -> Result<usize> {
        let _serial = self.inner.commands.lock().await;
        self.caught_up().await?;
        let now = self.clock.now();
        let answer_within = chrono::Duration::from_std(self.inner.config.transfer_answer_period)
            .unwrap_or(chrono::Duration::MAX);
        let due: Vec<(TaskEvent, String, task::LegalBasis)> = {
            let state = self.inner.state.read().expect("not poisoned");
            state
                .tasks
                .values()
                .flat_map(|t| {
                    task::due_escalations(t, now, answer_within)
                        .into_iter()
                        .map(|(at, escalation)| {
                            let id = escalation_event_id(&t.id, escalation.reason);
                            let event = TaskEvent {
                                task_id: t.id.clone(),
                                command_id: None,
                                actor: None,
                                at,
                                change: Change::Escalated(escalation),
                            };
                            (event, id, t.legal_basis.clone())
                        })
                })
                .collect()
        };
        let mut raised = 0;
        for (event, id, basis) in due {
            match self.publish(&event, &id, &basis).await {
                Ok(_) => raised += 1,
                // The record holds another escalation under this id: the sink raised the alarm, and
                // publishing it again would get the same answer.
                Err(Error::Publish(hazchem_kit::PublishError::IdReused(_))) => {}
                Err(error) => {
                    tracing::error!(task_id = %event.task_id, %error, "raising an escalation failed; retrying at the next check");
                }
            }
        }
        Ok(raised)
    }

    async fn escalation_loop(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.escalation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.raise_escalations().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalations = n, "escalations raised"),
                Err(error) => {
                    tracing::warn!(%error, "checking deadlines failed; retrying at the next check")
                }
            }
        }
    }
}

/// The enforcement state is a projection of the stream, followed by the kit.
impl hazchem_kit::Projection for Enforcement {
    type Error = Error;

    fn name(&self) -> &'static str {
        "enforcement"
    }

    fn position(&self) -> u64 {
        self.inner.state.read().expect("not poisoned").applied
    }

    /// The last task event: the store keeps its sequence and id.
    fn anchor(&self) -> Option<u64> {
        let state = self.inner.state.read().expect("not poisoned");
        state.last_event.as_ref().map(|(sequence, _)| *sequence)
    }

    fn matches(&self, message: &hazchem_bus::Message) -> Result<bool> {
        let state = self.inner.state.read().expect("not poisoned");
        Ok(state
            .last_event
            .as_ref()
            .is_some_and(|(_, id)| message.id() == id))
    }

    async fn reset(&self) -> Result<()> {
        self.inner.store.clear()?;
        *self.inner.state.write().expect("not poisoned") = Projection::default();
        Ok(())
    }

    /// Applies the batch in memory and writes it to sled in one atomic batch with the new position, then
    /// flushes. Batches that changed only risk facts are left to sled's own periodic flush: losing them in
    /// a crash loses their position with them, so they are only read again.
    async fn apply(&self, batch: Vec<hazchem_bus::Message>) -> Result<()> {
        let mut dirty = BTreeSet::new();
        {
            let mut state = self.inner.state.write().expect("not poisoned");
            for message in &batch {
                state.apply_message(message, &mut dirty);
            }
            self.inner.store.save(&state, &dirty)?;
        }
        if dirty.iter().any(|k| !matches!(k, Key::Risk(_)))
            || batch.len() >= self.inner.config.max_batch
        {
            self.inner.store.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_corrupt_store_is_rebuilt_from_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
        let admission = hazchem_admission::Admission::new(
            hazchem_admission::Policy::default_policy(),
            hazchem_pki::KeyRegistry::new(),
            hazchem_admission::Limits::default(),
        );
        let publisher = hazchem_gateway::Publisher::new(
            bus.clone(),
            admission,
            hazchem_gateway::Metrics::unregistered(),
        );
        let sink = EventSink::new(
            publisher,
            hazchem_pki::Principal::service("enforcement").unwrap(),
        );
        let config = EnforcementConfig {
            store: dir.path().join("store"),
            ..EnforcementConfig::default()
        };
        let registers = Registers::default_registers();
        {
            let db = hazchem_bus::open_sled(&config.store).unwrap();
            db.insert(b"m/version", b"1").unwrap();
            db.insert(b"t/broken", b"{not json").unwrap();
            db.insert(b"m/applied", &7u64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let service = Enforcement::open(&config, registers, bus, sink)
            .await
            .unwrap();
        assert_eq!(service.applied(), 0, "rebuilt from sequence 1");
        assert!(service.task("broken").is_none());
    }

    #[test]
    fn event_ids_are_stable_tokens() {
        let a = command_event_id(Department::Emergency, "cmd-1");
        assert_eq!(a, command_event_id(Department::Emergency, "cmd-1"));
        assert_ne!(a, command_event_id(Department::Fire, "cmd-1"));
        assert_ne!(a, command_event_id(Department::Emergency, "cmd-2"));
        hazchem_bus::validate_event_id(&a).unwrap();
        let e = escalation_event_id("t-1", EscalationReason::Overdue);
        assert_ne!(
            e,
            escalation_event_id("t-1", EscalationReason::TransferLate)
        );
        hazchem_bus::validate_event_id(&e).unwrap();
    }
}
