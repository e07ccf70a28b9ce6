//! The ledger service: ingests the stream into the Merkle log, issues and publishes signed checkpoints,
//! and answers proofs and replays.
//!
//! # Ingest
//!
//! The ledger reads the whole stream (`Filter::all()`) from its own cursor (`next_sequence`, kept in the
//! store), in order. Messages are taken in small batches (whatever is available, up to
//! [`LedgerConfig::max_batch`]); each batch is one atomic sled batch followed by a flush (`hazchem_bus::flush_sled`), and only
//! then are the messages consumed: proofs and checkpoints see them, and the cursor moves. A crash anywhere
//! loses at most a batch that was never consumed, which is read again on restart, so every message becomes
//! exactly one leaf. Leaf index = sequence − 1 always: a sequence missing from the stream stops the ledger
//! (the kit's follow loop, `FollowError::Gap`), as does an event id arriving twice
//! ([`Error::DuplicateEventId`]).
//!
//! # Checkpoints
//!
//! Issued every [`LedgerConfig::checkpoint_every`] events, every [`LedgerConfig::checkpoint_interval`] if
//! anything arrived, and on demand. A checkpoint is stored durably first, then published as a
//! `checkpoint_published` event through the gateway's admission (as service `ledger`), with an id derived
//! from origin and size and the stored issue time, so a re-publication after a crash is the same event and
//! deduplicates. The ledger's own checkpoint events do not count as growth, so an idle ledger is quiet.
//!
//! Every `checkpoint_published` event of this origin met in the stream is screened first: a checkpoint
//! only counts if its signed note verifies with the ledger's own key and agrees with the event's fields,
//! with a 32-byte root and a tree size no larger than its own leaf index. Anything else (another key, a
//! note that disagrees, a malformed root, an oversized tree size) is logged as an error and ignored: it
//! stays a leaf, but is never stored as a checkpoint, never served, and does not stop the ledger. A
//! checkpoint that passes is checked against the tree at its size: rebuilding a lost store from the stream
//! verifies itself, and a root that differs stops the ledger ([`Error::CheckpointMismatch`]).
//!
//! # Start
//!
//! [`Ledger::open`] refuses a store that disagrees with its last checkpoint (recomputed root, signature) or,
//! with [`StartupCheck::Full`], any leaf with its hash or any hash with its children.
//! [`Ledger::run`] follows the stream with the kit ([`hazchem_kit::follow`]), which refuses a store the
//! stream does not match (stream shorter than the log, or a different message at the log's last
//! sequence): the ledger never rebuilds over what it signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use hazchem_admission::Policy;
use hazchem_bus::{Bus, Message};
use hazchem_kit::{EventSink, SharedClock, SystemClock};
use hazchem_pki::SigningKey;
use hazchem_proto::v1;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{LedgerConfig, StartupCheck, WitnessForm};
use crate::error::{Error, Result};
use crate::merkle::{self, Frontier, Hash};
use crate::note::{Checkpoint, NoteSigner, VerifierKey};
use crate::store::{Append, LedgerStore, StoreState, StoredCheckpoint};
use crate::witness::{Cosigner, Witness, WitnessKey, add_cosignatures};
use crate::witnesses::WitnessPeer;

/// The service name the ledger publishes as.
pub const SERVICE_NAME: &str = hazchem_kit::checkpoint::LEDGER;

/// An inclusion proof as the ledger serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    pub hashes: Vec<Hash>,
}

/// Why a checkpoint is being considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Someone asked for the latest: issue only if there is none yet.
    Latest,
    /// Someone asked for a fresh one: issue if the tree grew at all.
    Fresh,
    /// The timer: issue if other events arrived.
    Timer,
    /// The ingest: issue if `checkpoint_every` other events arrived.
    Count,
}

/// The ledger. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
    /// When checkpoints are issued (`issued_at`). Clones carry it, so set it ([`Ledger::with_clock`])
    /// before cloning.
    clock: SharedClock,
}

#[derive(Debug)]
struct Inner {
    store: LedgerStore,
    signer: NoteSigner,
    verifier: VerifierKey,
    config: LedgerConfig,
    policy: Policy,
    /// What is durable and may be served.
    committed: watch::Sender<StoreState>,
    /// Serialises issuing.
    issuing: tokio::sync::Mutex<()>,
    latest: Mutex<Option<StoredCheckpoint>>,
    to_publish: mpsc::UnboundedSender<StoredCheckpoint>,
    /// The witnesses asked to cosign each checkpoint (see [`Ledger::add_witnesses`]).
    witnesses: Mutex<Vec<Arc<WitnessPeer>>>,
    publish_queue: Mutex<Option<mpsc::UnboundedReceiver<StoredCheckpoint>>>,
}

/// The Merkle log as a projection of the stream. The ledger never rebuilds over a store (it holds what the
/// ledger signed): a store the stream does not match is refused.
struct Follower {
    ledger: Ledger,
    tree: tokio::sync::Mutex<(Frontier, StoreState)>,
}

impl hazchem_kit::Projection for Follower {
    type Error = Error;

    fn name(&self) -> &'static str {
        SERVICE_NAME
    }

    fn position(&self) -> u64 {
        self.ledger.size()
    }

    /// The stream's message at the tree size must be the last leaf, byte for byte.
    fn matches(&self, message: &Message) -> Result<bool> {
        let size = self.ledger.size();
        let leaf = self
            .ledger
            .inner
            .store
            .leaf(size - 1)?
            .ok_or(Error::MissingNode {
                level: 0,
                index: size - 1,
            })?;
        Ok(message.payload.as_ref() == leaf.as_ref())
    }

    fn on_mismatch(&self) -> hazchem_kit::OnMismatch {
        hazchem_kit::OnMismatch::Refuse
    }

    async fn reset(&self) -> Result<()> {
        Err(Error::StreamMismatch(
            "the ledger never empties its store; move it away to rebuild it from the stream".into(),
        ))
    }

    async fn apply(&self, batch: Vec<Message>) -> Result<()> {
        let mut tree = self.tree.lock().await;
        let (frontier, state) = &mut *tree;
        let result = self.ledger.apply(frontier, state, batch).await;
        // What came before a message the ledger must not record is kept, and served.
        self.ledger.inner.committed.send_replace(*state);
        result?;
        self.ledger.maybe_issue(Trigger::Count).await?;
        Ok(())
    }
}

/// The id of the `checkpoint_published` event for a checkpoint: the same for the same origin and size,
/// so that publishing it again deduplicates.
pub fn checkpoint_event_id(origin: &str, size: u64) -> String {
    let digest = Sha256::digest(origin.as_bytes());
    format!("checkpoint-{}-{size}", hex::encode(&digest[..8]))
}

/// The `checkpoint_published` event of a stored checkpoint (deterministic: same checkpoint, same bytes).
pub fn checkpoint_event(origin: &str, checkpoint: &StoredCheckpoint) -> v1::Event {
    let payload = v1::event::Payload::CheckpointPublished(v1::CheckpointPublished {
        origin: origin.to_owned(),
        tree_size: checkpoint.size,
        root_hash: checkpoint.root.to_vec(),
        signed_note: checkpoint.note.clone(),
    });
    let mut event = hazchem_proto::build_event(
        checkpoint_event_id(origin, checkpoint.size),
        format!("/services/{SERVICE_NAME}"),
        None,
        hazchem_proto::time::timestamp(checkpoint.issued_at),
        payload,
    );
    event.subject = origin.to_owned();
    event
}

impl Ledger {
    /// Loads the signing key and the policy the configuration names, then [`Ledger::open`]s.
    pub fn from_config(config: &LedgerConfig) -> Result<Ledger> {
        config.validate().map_err(Error::Config)?;
        let key_path = config.signing_key.as_ref().expect("validated");
        let key = SigningKey::load(key_path)?;
        let policy = match &config.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::default_policy(),
        };
        let ledger = Ledger::open(config, key, policy)?;
        let mut witnesses: Vec<WitnessPeer> = Vec::new();
        for (i, w) in config.witnesses.iter().enumerate() {
            let setting = |field: &str| format!("ledger.witnesses[{i}].{field}");
            match w.form().map_err(Error::Config)? {
                WitnessForm::Local {
                    name,
                    signing_key,
                    state,
                } => {
                    let cosigner =
                        Cosigner::new(name, SigningKey::load(signing_key)?).map_err(|e| {
                            hazchem_kit::ConfigError::new(setting("name"), e.to_string())
                        })?;
                    witnesses.push(
                        Witness::new(
                            cosigner,
                            vec![ledger.verifier_key().clone()],
                            Some(state.to_owned()),
                        )?
                        .into(),
                    );
                }
                WitnessForm::Remote { url, key, ca } => {
                    let key = WitnessKey::parse(key).map_err(|e| {
                        hazchem_kit::ConfigError::new(setting("key"), e.to_string())
                    })?;
                    let remote =
                        hazchem_witness::RemoteWitness::new(url, key, ca).map_err(|e| {
                            hazchem_kit::ConfigError::new(setting("url"), e.to_string())
                        })?;
                    witnesses.push(remote.into());
                }
            }
        }
        ledger.add_witnesses(witnesses);
        Ok(ledger)
    }

    /// Opens the store and checks it against its last checkpoint; refuses (with an error naming what
    /// disagrees) if they differ. Does not touch the stream: see [`Ledger::run`].
    pub fn open(config: &LedgerConfig, key: SigningKey, policy: Policy) -> Result<Ledger> {
        let signer = NoteSigner::new(&config.origin, key)
            .map_err(|e| hazchem_kit::ConfigError::new("ledger.origin", e.to_string()))?;
        let verifier = signer.verifier();
        let store = LedgerStore::open(&config.store)?;
        let state = store.state()?;
        if config.startup_check == StartupCheck::Full {
            store.deep_check(state.size)?;
        }
        // Every hash the size implies must be there.
        Frontier::from_source(&store, state.size).map_err(|e| Error::StoreDisagrees {
            size: state.size,
            what: e.to_string(),
        })?;
        let latest = store.latest_checkpoint()?;
        if let Some(latest) = &latest {
            check_checkpoint_against_store(&store, &verifier, &config.origin, latest, state.size)?;
        }
        tracing::info!(
            store = %config.store.display(),
            tree_size = state.size,
            last_checkpoint = latest.as_ref().map(|c| c.size),
            key = %verifier,
            "ledger store checked"
        );
        let (committed, _) = watch::channel(state);
        let (to_publish, queue) = mpsc::unbounded_channel();
        Ok(Ledger {
            inner: Arc::new(Inner {
                store,
                signer,
                verifier,
                config: config.clone(),
                policy,
                committed,
                issuing: tokio::sync::Mutex::new(()),
                latest: Mutex::new(latest),
                to_publish,
                witnesses: Mutex::new(Vec::new()),
                publish_queue: Mutex::new(Some(queue)),
            }),
            clock: SystemClock::shared(),
        })
    }

    /// Takes the time from `clock` instead of the system clock (tests move a
    /// [`hazchem_kit::ManualClock`]). Set it before cloning: clones carry the clock they were made with.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds witnesses, in this process ([`Witness`]) or remote
    /// ([`hazchem_witness::RemoteWitness`]): each checkpoint issued from now on is submitted to each of
    /// them (C2SP tlog-witness `add-checkpoint`, with the consistency proof from the size that witness
    /// recorded), and their cosignature lines are appended to the stored note (the one GetCheckpoint
    /// serves, bundles carry and the `checkpoint_published` event publishes). A refusal or an unreachable
    /// witness is logged as an error naming the witness and the reason; it does not stop the ledger, and
    /// the checkpoint is issued without that cosignature.
    pub fn add_witnesses(&self, witnesses: impl IntoIterator<Item = impl Into<WitnessPeer>>) {
        let mut ours = self.inner.witnesses.lock().expect("not poisoned");
        for witness in witnesses {
            let witness = witness.into();
            tracing::info!(witness = %witness.key(), at = witness.place(), "witness added");
            ours.push(Arc::new(witness));
        }
    }

    /// The keys of the witnesses the ledger asks (`<name>+<key id hex>+<base64>` each).
    pub fn witness_keys(&self) -> Vec<WitnessKey> {
        self.inner
            .witnesses
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|w| w.key().clone())
            .collect()
    }

    /// Asks every witness, all at once, to cosign `note` (of `size` leaves), returning the cosignature
    /// lines of those that did.
    async fn collect_cosignatures(&self, note: &str, size: u64, time: u64) -> Vec<String> {
        let witnesses = self.inner.witnesses.lock().expect("not poisoned").clone();
        let origin = &self.inner.config.origin;
        let store = &self.inner.store;
        futures::future::join_all(
            witnesses
                .iter()
                .map(|w| w.cosign(store, origin, note, size, time)),
        )
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
    }

    /// The ledger's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The public key auditors verify with.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.inner.verifier
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.inner.config.origin
    }

    /// The read policy Replay applies.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The store (read-only use: proofs, replay).
    pub fn store(&self) -> &LedgerStore {
        &self.inner.store
    }

    /// The number of leaves durable and served.
    pub fn size(&self) -> u64 {
        self.inner.committed.borrow().size
    }

    /// Waits until at least `size` leaves are durable.
    pub async fn wait_for_size(&self, size: u64) {
        let mut rx = self.inner.committed.subscribe();
        let _ = rx.wait_for(|s| s.size >= size).await;
    }

    /// Runs the ledger until `shutdown`: checks the store against the stream, then ingests, issues
    /// checkpoints and publishes them through `sink` (none: checkpoints are kept but not published).
    /// Returns an error if the ledger must stop (stream gap, duplicate id, a checkpoint in the stream that
    /// does not match, storage failure).
    pub async fn run(
        &self,
        bus: Bus,
        sink: Option<EventSink>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let tasks = shutdown.child_token();
        let queue = self
            .inner
            .publish_queue
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or(Error::AlreadyRunning)?;
        for checkpoint in self.inner.store.unpublished_checkpoints()? {
            let _ = self.inner.to_publish.send(checkpoint);
        }
        let publisher =
            sink.map(|sink| tokio::spawn(self.clone().publish_loop(sink, queue, tasks.clone())));
        let timer = tokio::spawn(self.clone().timer_loop(tasks.clone()));
        let store = &self.inner.store;
        let state = store.state()?;
        let follower = Follower {
            ledger: self.clone(),
            tree: tokio::sync::Mutex::new((Frontier::from_source(store, state.size)?, state)),
        };
        // The stream must agree with every checkpoint this ledger signed into it.
        let options = hazchem_kit::FollowOptions {
            max_batch: self.inner.config.max_batch,
            checkpoints: Some(self.verifier_key().clone()),
            ..hazchem_kit::FollowOptions::default()
        };
        let progress = hazchem_kit::Progress::new(state.size);
        let result = hazchem_kit::follow(&follower, &bus, &options, &progress, &tasks)
            .await
            .map_err(|e| Error::Follow(Box::new(e)));
        tasks.cancel();
        let _ = timer.await;
        if let Some(publisher) = publisher {
            let _ = publisher.await;
        }
        result
    }

    /// Appends one batch of messages durably.
    async fn apply(
        &self,
        frontier: &mut Frontier,
        state: &mut StoreState,
        batch: Vec<Message>,
    ) -> Result<()> {
        let store = &self.inner.store;
        let origin = &self.inner.config.origin;
        // (message, checkpoint met, foreign)
        let mut pending: Vec<(Message, Option<StoredCheckpoint>, bool)> =
            Vec::with_capacity(batch.len());
        let mut ids: HashMap<(String, String), u64> = HashMap::new();
        // The first message the ledger must not record stops the batch; what came before it is kept.
        let mut stop = None;
        for message in batch {
            // The kit hands over consecutive sequences from the tree's size + 1; the ledger does not
            // rely on it: a message delivered again is dropped, and a gap stops the batch.
            let index = frontier.size() + pending.len() as u64;
            if message.sequence <= index {
                tracing::warn!(
                    sequence = message.sequence,
                    expected = index + 1,
                    "message delivered again; already a leaf, ignored"
                );
                continue;
            }
            if message.sequence > index + 1 {
                stop = Some(Error::StreamMismatch(format!(
                    "stream gap: expected sequence {}, the stream delivered {}",
                    index + 1,
                    message.sequence
                )));
                break;
            }
            let key = (message.publisher().to_owned(), message.id().to_owned());
            let first_index = match ids.get(&key) {
                Some(i) => Some(*i),
                None => store.index_of(&key.0, &key.1)?,
            };
            if let Some(first_index) = first_index {
                let (publisher, id) = key;
                stop = Some(Error::DuplicateEventId {
                    publisher,
                    id,
                    first_index,
                    sequence: message.sequence,
                });
                break;
            }
            ids.insert(key, index);
            let mut met = None;
            let mut foreign = true;
            if hazchem_kit::checkpoint::is_checkpoint_subject(&message.subject)
                && let Some((published, time)) =
                    hazchem_kit::checkpoint::published_checkpoint(&message.payload)
                && &published.origin == origin
            {
                match self.screen_published(&published, index) {
                    Err(why) => {
                        // Not a checkpoint this ledger signed: a leaf like any other, never stored as a
                        // checkpoint, and no reason to stop.
                        tracing::error!(
                            tree_size = published.tree_size,
                            sequence = message.sequence,
                            reason = %why,
                            "a checkpoint_published event in the stream is not this ledger's checkpoint; \
                             ignored (not stored, not served)"
                        );
                    }
                    Ok(root) => {
                        foreign = false;
                        // The tree at the checkpoint's size must be applied (not yet durable is fine) to
                        // hash it.
                        if published.tree_size > frontier.size() && !pending.is_empty() {
                            self.append_pending(frontier, state, &mut pending)?;
                        }
                        match self.check_published(
                            &published,
                            root,
                            time,
                            message.sequence,
                            state.foreign,
                        ) {
                            Ok(checkpoint) => met = checkpoint,
                            Err(error) => {
                                stop = Some(error);
                                break;
                            }
                        }
                    }
                }
            }
            pending.push((message, met, foreign));
        }
        self.append_pending(frontier, state, &mut pending)?;
        store.flush().await?;
        // A checkpoint met in the stream may be later than the latest known (a rebuild).
        if let Some(stored) = store.latest_checkpoint()? {
            let mut latest = self.inner.latest.lock().expect("not poisoned");
            if latest.as_ref().is_none_or(|l| l.size < stored.size) {
                *latest = Some(stored);
            }
        }
        match stop {
            Some(error) => {
                self.inner.committed.send_replace(*state);
                Err(error)
            }
            None => Ok(()),
        }
    }

    fn append_pending(
        &self,
        frontier: &mut Frontier,
        state: &mut StoreState,
        pending: &mut Vec<(Message, Option<StoredCheckpoint>, bool)>,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let items: Vec<Append<'_>> = pending
            .iter()
            .map(|(message, checkpoint, foreign)| Append {
                sequence: message.sequence,
                publisher: message.publisher(),
                id: message.id(),
                record: message.payload.as_ref(),
                foreign: *foreign,
                checkpoint: checkpoint.clone(),
            })
            .collect();
        self.inner.store.append(frontier, state, &items)?;
        pending.clear();
        Ok(())
    }

    /// Whether a `checkpoint_published` event of this origin at leaf `index` is a checkpoint this ledger
    /// signed: its tree size is at most `index` (it follows the leaves it covers), its root is 32 bytes, its
    /// signed note verifies with the ledger's own key (origin and signature) and says what its fields say.
    /// Returns its root, or why it is not one (it is then ignored: anyone who may publish as the ledger
    /// service could have written it, and only the ledger's key makes a checkpoint).
    fn screen_published(
        &self,
        published: &v1::CheckpointPublished,
        index: u64,
    ) -> std::result::Result<Hash, String> {
        let size = published.tree_size;
        if size > index {
            return Err(format!(
                "it claims {size} leaves but was appended as leaf {index}, before the leaves it covers"
            ));
        }
        let root: Hash = published.root_hash.as_slice().try_into().map_err(|_| {
            format!(
                "its root hash is {} bytes, not 32",
                published.root_hash.len()
            )
        })?;
        let noted = self
            .inner
            .verifier
            .open_checkpoint(&published.signed_note)
            .map_err(|e| {
                format!(
                    "its signed note does not verify with the ledger's key {}: {e}",
                    self.inner.verifier
                )
            })?;
        let fields = Checkpoint {
            origin: published.origin.clone(),
            size,
            root,
        };
        if noted != fields {
            return Err(format!(
                "its signed note says {noted}, its fields say {fields}"
            ));
        }
        Ok(root)
    }

    /// Checks a checkpoint this ledger signed (see [`Ledger::screen_published`]), found in the stream at
    /// `sequence`, against the tree; returns it for storing if the store does not know it as published
    /// yet. A root that differs from the tree rebuilt from the stream is an error that stops the ledger:
    /// the ledger's own key signed another history than the stream's.
    fn check_published(
        &self,
        published: &v1::CheckpointPublished,
        root: Hash,
        time: DateTime<Utc>,
        sequence: u64,
        foreign: u64,
    ) -> Result<Option<StoredCheckpoint>> {
        let size = published.tree_size;
        let ours = merkle::root(&self.inner.store, size)?;
        if ours != root {
            return Err(Error::CheckpointMismatch {
                size,
                sequence,
                what: format!(
                    "it says root {}, the log rebuilt from the stream has {} at that size",
                    hex::encode(root),
                    hex::encode(ours)
                ),
            });
        }
        let existing = self.inner.store.checkpoint(size)?;
        match existing {
            Some(existing) if existing.published => Ok(None),
            Some(existing) => Ok(Some(StoredCheckpoint {
                published: true,
                ..existing
            })),
            None => Ok(Some(StoredCheckpoint {
                size,
                root,
                note: published.signed_note.clone(),
                issued_at: time,
                published: true,
                foreign,
            })),
        }
    }

    /// The latest checkpoint; `fresh` issues one covering every durable leaf if the tree grew since.
    pub async fn checkpoint(&self, fresh: bool) -> Result<StoredCheckpoint> {
        let trigger = if fresh {
            Trigger::Fresh
        } else {
            Trigger::Latest
        };
        if let Some(issued) = self.maybe_issue(trigger).await? {
            return Ok(issued);
        }
        self.inner
            .latest
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| Error::Corrupt("no checkpoint after issuing one".into()))
    }

    async fn maybe_issue(&self, trigger: Trigger) -> Result<Option<StoredCheckpoint>> {
        let _issuing = self.inner.issuing.lock().await;
        let committed = *self.inner.committed.borrow();
        let latest = self.inner.latest.lock().expect("not poisoned").clone();
        let due = match (&latest, trigger) {
            (None, Trigger::Latest | Trigger::Fresh) => true,
            (None, Trigger::Timer) => committed.foreign > 0,
            (None, Trigger::Count) => committed.foreign >= self.inner.config.checkpoint_every,
            (Some(_), Trigger::Latest) => false,
            (Some(l), Trigger::Fresh) => committed.size > l.size,
            (Some(l), Trigger::Timer) => committed.foreign > l.foreign && committed.size > l.size,
            (Some(l), Trigger::Count) => {
                committed.foreign.saturating_sub(l.foreign) >= self.inner.config.checkpoint_every
                    && committed.size > l.size
            }
        };
        if !due {
            return Ok(None);
        }
        let root = merkle::root(&self.inner.store, committed.size)?;
        let checkpoint = Checkpoint {
            origin: self.inner.config.origin.clone(),
            size: committed.size,
            root,
        };
        let issued_at = self.clock.now();
        let note = self.inner.signer.sign_checkpoint(&checkpoint);
        let cosignatures = self
            .collect_cosignatures(
                &note,
                committed.size,
                u64::try_from(issued_at.timestamp()).unwrap_or(0),
            )
            .await;
        let stored = StoredCheckpoint {
            size: committed.size,
            root,
            note: add_cosignatures(&note, &cosignatures),
            issued_at,
            published: false,
            foreign: committed.foreign,
        };
        self.inner.store.put_checkpoint(&stored)?;
        self.inner.store.flush().await?;
        *self.inner.latest.lock().expect("not poisoned") = Some(stored.clone());
        tracing::info!(tree_size = stored.size, root = %hex::encode(root), ?trigger, "checkpoint issued");
        let _ = self.inner.to_publish.send(stored.clone());
        Ok(Some(stored))
    }

    async fn timer_loop(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.maybe_issue(Trigger::Timer).await {
                tracing::error!(%error, "issuing a checkpoint failed");
            }
        }
    }

    async fn publish_loop(
        self,
        sink: EventSink,
        mut queue: mpsc::UnboundedReceiver<StoredCheckpoint>,
        shutdown: CancellationToken,
    ) {
        loop {
            let checkpoint = tokio::select! {
                () = shutdown.cancelled() => return,
                next = queue.recv() => match next {
                    Some(c) => c,
                    None => return,
                },
            };
            let event = checkpoint_event(&self.inner.config.origin, &checkpoint);
            match sink.publish_retrying(&event, &shutdown).await {
                None => return,
                Some(Ok(accepted)) => {
                    tracing::debug!(
                        tree_size = checkpoint.size,
                        sequence = accepted.sequence,
                        duplicate = accepted.duplicate,
                        "checkpoint published"
                    );
                    if let Err(error) = self.mark_published(checkpoint.size).await {
                        tracing::error!(%error, "recording a published checkpoint failed");
                    }
                }
                // Refused, or another checkpoint under its id (the sink raises that alarm).
                Some(Err(refused)) => {
                    let status = refused.status();
                    tracing::error!(
                        tree_size = checkpoint.size,
                        code = ?status.code(),
                        error = %status.message(),
                        "the gateway refused a checkpoint event; it stays unpublished until the next start"
                    );
                }
            }
        }
    }

    async fn mark_published(&self, size: u64) -> Result<()> {
        let _issuing = self.inner.issuing.lock().await;
        if let Some(mut stored) = self.inner.store.checkpoint(size)?
            && !stored.published
        {
            stored.published = true;
            self.inner.store.put_checkpoint(&stored)?;
            self.inner.store.flush().await?;
            let mut latest = self.inner.latest.lock().expect("not poisoned");
            if latest.as_ref().is_some_and(|l| l.size == size) {
                *latest = Some(stored);
            }
        }
        Ok(())
    }

    /// The root of the first `size` leaves (`size` at most the durable size).
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size, "tree_size")?;
        merkle::root(&self.inner.store, size)
    }

    fn check_size(&self, size: u64, field: &str) -> Result<()> {
        let current = self.size();
        if size > current {
            return Err(Error::OutOfRange(format!(
                "{field}: the log holds {current} leaves, not {size}"
            )));
        }
        Ok(())
    }

    /// Every publisher's leaf with event id `event_id` (event ids are scoped by publisher), up to the
    /// current size: (publisher, leaf index).
    pub fn indexes_of(&self, event_id: &str) -> Result<Vec<(String, u64)>> {
        let size = self.size();
        let mut found = self.inner.store.indexes_of(event_id)?;
        found.retain(|(_, i)| *i < size);
        Ok(found)
    }

    /// The inclusion proof of leaf `index` in the tree of `tree_size` leaves.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<InclusionProof> {
        self.check_size(tree_size, "tree_size")?;
        let hashes = merkle::inclusion_proof(&self.inner.store, index, tree_size)?;
        let leaf_hash = crate::merkle::NodeSource::node(&self.inner.store, 0, index)?;
        Ok(InclusionProof {
            index,
            tree_size,
            leaf_hash,
            hashes,
        })
    }

    /// The consistency proof between the trees of `first` and `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>> {
        self.check_size(second, "second_size")?;
        merkle::consistency_proof(&self.inner.store, first, second)
    }
}

/// Checks a stored checkpoint against the stored hashes and the key.
fn check_checkpoint_against_store(
    store: &LedgerStore,
    verifier: &VerifierKey,
    origin: &str,
    latest: &StoredCheckpoint,
    size: u64,
) -> Result<()> {
    let disagree = |what: String| Error::StoreDisagrees {
        size: latest.size,
        what,
    };
    if latest.size > size {
        return Err(disagree(format!("the store holds only {size} leaves")));
    }
    let checkpoint = verifier.open_checkpoint(&latest.note).map_err(|e| {
        disagree(format!(
            "its signed note does not verify with the configured key: {e}"
        ))
    })?;
    if checkpoint.origin != origin {
        return Err(disagree(format!(
            "it is for origin {:?}, the ledger is configured as {origin:?}",
            checkpoint.origin
        )));
    }
    if checkpoint.size != latest.size || checkpoint.root != latest.root {
        return Err(disagree(
            "the stored size or root differs from its signed note".into(),
        ));
    }
    let root = merkle::root(store, latest.size)?;
    if root != checkpoint.root {
        return Err(disagree(format!(
            "the stored hashes give root {} at size {}, the signed checkpoint says {}",
            hex::encode(root),
            latest.size,
            hex::encode(checkpoint.root)
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests: a message's bus time is any instant
mod tests {
    use prost::Message as _;

    use super::*;

    fn ledger(dir: &std::path::Path) -> Ledger {
        let config = LedgerConfig {
            store: dir.to_owned(),
            ..LedgerConfig::default()
        };
        Ledger::open(&config, SigningKey::generate(), Policy::default_policy()).unwrap()
    }

    /// A ledger over `dir` with the signing key saved in `key` (PKCS#8 PEM), so that it can be reopened.
    fn ledger_with_key(dir: &std::path::Path, key: &std::path::Path) -> Result<Ledger> {
        let config = LedgerConfig {
            store: dir.to_owned(),
            ..LedgerConfig::default()
        };
        Ledger::open(&config, SigningKey::load(key)?, Policy::default_policy())
    }

    /// A `checkpoint_published` event by the ledger service with exactly these fields, as stream message
    /// `sequence`.
    fn published_message(sequence: u64, published: v1::CheckpointPublished) -> Message {
        let mut event = hazchem_proto::build_event(
            checkpoint_event_id(&published.origin, published.tree_size),
            format!("/services/{SERVICE_NAME}"),
            None,
            hazchem_proto::time::timestamp(Utc::now()),
            v1::event::Payload::CheckpointPublished(published),
        );
        event.subject = crate::note::DEFAULT_ORIGIN.to_owned();
        let record = v1::Record {
            event: event.encode_to_vec(),
            signature: None,
            publisher: Some(v1::Publisher {
                principal: Some(v1::publisher::Principal::Service(SERVICE_NAME.into())),
            }),
            accepted_at: None,
        };
        Message {
            sequence,
            subject: format!("hazchem.ev.ledger.checkpoint_published.{}", event.id),
            time: Utc::now(),
            payload: record.encode_to_vec().into(),
        }
    }

    /// The fields of a checkpoint of `ledger`'s origin at `size` with its true root, signed by `signer`.
    fn signed_fields(ledger: &Ledger, size: u64, signer: &NoteSigner) -> v1::CheckpointPublished {
        let checkpoint = Checkpoint {
            origin: ledger.origin().to_owned(),
            size,
            root: ledger.root(size).unwrap(),
        };
        v1::CheckpointPublished {
            origin: checkpoint.origin.clone(),
            tree_size: size,
            root_hash: checkpoint.root.to_vec(),
            signed_note: signer.sign_checkpoint(&checkpoint),
        }
    }

    #[tokio::test]
    async fn witnesses_cosign_each_checkpoint_and_a_refusal_does_not_stop_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        five(&ledger).await;
        let cosigner = |i: u8| {
            Cosigner::new(
                &format!("hazchem.example/witness/{i}"),
                hazchem_verify::ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]),
            )
            .unwrap()
        };
        let mut witnesses: Vec<Witness> = (0..9)
            .map(|i| Witness::new(cosigner(i), vec![ledger.verifier_key().clone()], None).unwrap())
            .collect();
        // Witness 8 was shown a fork: another checkpoint of size 5, signed by the ledger's key.
        let forged = ledger.inner.signer.sign_checkpoint(&Checkpoint {
            origin: ledger.origin().to_owned(),
            size: 5,
            root: [9; 32],
        });
        witnesses[8]
            .add_checkpoint(
                &crate::witness::AddCheckpoint {
                    old: 0,
                    proof: vec![],
                    note: forged,
                },
                0,
            )
            .unwrap();
        ledger.add_witnesses(witnesses);
        let keys = ledger.witness_keys();
        assert_eq!(keys.len(), 9);

        let first = ledger.checkpoint(true).await.unwrap();
        assert_eq!(first.size, 5);
        ledger.verifier_key().open_checkpoint(&first.note).unwrap();
        let good = crate::witness::verify_cosignatures(&first.note, &keys).unwrap();
        assert_eq!(good.len(), 8, "{}", first.note);
        assert!(good.iter().all(|c| c.witness != keys[8].to_string()));

        // The ledger goes on; the next checkpoint is cosigned with consistency proofs from size 5, and
        // the forked witness refuses again.
        apply(
            &ledger,
            vec![message(6, "e6", vec![6]), message(7, "e7", vec![7])],
        )
        .await
        .unwrap();
        let second = ledger.checkpoint(true).await.unwrap();
        assert_eq!(second.size, 7);
        assert_eq!(
            crate::witness::verify_cosignatures(&second.note, &keys)
                .unwrap()
                .len(),
            8
        );
        // The stored note is the cosigned one.
        assert_eq!(
            ledger.inner.store.checkpoint(7).unwrap().unwrap().note,
            second.note
        );
    }

    /// Five ordinary leaves.
    async fn five(ledger: &Ledger) {
        apply(
            ledger,
            (1..=5)
                .map(|i| message(i, &format!("e{i}"), vec![i as u8]))
                .collect(),
        )
        .await
        .unwrap();
    }

    /// `bogus` is ignored: it becomes leaf 5 like any message, no checkpoint is stored or served, and
    /// the ledger goes on.
    async fn ignored(ledger: &Ledger, bogus: v1::CheckpointPublished) {
        let latest = ledger.inner.latest.lock().unwrap().clone();
        let stored = |n: u64| ledger.inner.store.checkpoint(n).unwrap();
        let at_size = stored(bogus.tree_size);
        let stored_before: Vec<u64> = (0..=6).filter(|n| stored(*n).is_some()).collect();
        apply(ledger, vec![published_message(6, bogus.clone())])
            .await
            .expect("the ledger keeps running");
        assert_eq!(ledger.size(), 6, "the message is a leaf");
        let stored_after: Vec<u64> = (0..=6).filter(|n| stored(*n).is_some()).collect();
        assert_eq!(stored_after, stored_before, "no checkpoint stored");
        assert_eq!(
            stored(bogus.tree_size),
            at_size,
            "what the store holds at its size is unchanged"
        );
        assert!(
            at_size.is_none_or(|c| c.note != bogus.signed_note),
            "the bogus note is not stored"
        );
        assert_eq!(
            *ledger.inner.latest.lock().unwrap(),
            latest,
            "nothing served"
        );
        assert_eq!(
            ledger.inner.store.state().unwrap().foreign,
            6,
            "it counts as another's leaf"
        );
        apply(ledger, vec![message(7, "after", vec![7])])
            .await
            .unwrap();
        assert_eq!(ledger.size(), 7);
    }

    fn message(sequence: u64, id: &str, payload: Vec<u8>) -> Message {
        Message {
            sequence,
            subject: format!("hazchem.ev.transport.waybill_issued.{id}"),
            time: Utc::now(),
            payload: payload.into(),
        }
    }

    fn checkpoint_message(
        sequence: u64,
        ledger: &Ledger,
        checkpoint: &StoredCheckpoint,
    ) -> Message {
        let event = checkpoint_event(ledger.origin(), checkpoint);
        let record = v1::Record {
            event: event.encode_to_vec(),
            signature: None,
            publisher: Some(v1::Publisher {
                principal: Some(v1::publisher::Principal::Service(SERVICE_NAME.into())),
            }),
            accepted_at: None,
        };
        Message {
            sequence,
            subject: format!("hazchem.ev.ledger.checkpoint_published.{}", event.id),
            time: Utc::now(),
            payload: record.encode_to_vec().into(),
        }
    }

    async fn apply(ledger: &Ledger, batch: Vec<Message>) -> Result<()> {
        let mut state = ledger.inner.store.state()?;
        let mut frontier = Frontier::from_source(&ledger.inner.store, state.size)?;
        let result = ledger.apply(&mut frontier, &mut state, batch).await;
        ledger.inner.committed.send_replace(state);
        result
    }

    #[tokio::test]
    async fn an_event_id_seen_before_stops_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        apply(&ledger, vec![message(1, "a", b"one".to_vec())])
            .await
            .unwrap();
        let error = apply(
            &ledger,
            vec![
                message(2, "b", b"two".to_vec()),
                message(3, "a", b"again".to_vec()),
            ],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, Error::DuplicateEventId { publisher, id, first_index: 0, sequence: 3 }
                if id == "a" && publisher == "transport"),
            "{error}"
        );
        assert_eq!(ledger.size(), 2);
        // Ids are scoped by publisher: the same id from another publisher is another leaf.
        let mut other = message(3, "a", b"fire's".to_vec());
        other.subject = "hazchem.ev.fire.incident_reported.a".into();
        apply(&ledger, vec![other]).await.unwrap();
        assert_eq!(ledger.size(), 3);
        assert_eq!(
            ledger.indexes_of("a").unwrap(),
            vec![("fire".to_owned(), 2), ("transport".to_owned(), 0)]
        );
        // Within one batch too.
        let dir = tempfile::tempdir().unwrap();
        let ledger = self::ledger(dir.path());
        let error = apply(
            &ledger,
            vec![
                message(1, "x", b"1".to_vec()),
                message(2, "x", b"2".to_vec()),
            ],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::DuplicateEventId { first_index: 0, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn checkpoints_in_the_stream_are_checked_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        apply(
            &ledger,
            (1..=5)
                .map(|i| message(i, &format!("e{i}"), vec![i as u8]))
                .collect(),
        )
        .await
        .unwrap();
        let issued = ledger.checkpoint(true).await.unwrap();
        assert_eq!(issued.size, 5);
        assert!(!issued.published);
        // Its event arrives, with more events around it, in one batch: it is checked and marked published.
        let batch = vec![
            message(6, "e6", vec![6]),
            checkpoint_message(7, &ledger, &issued),
            message(8, "e8", vec![8]),
        ];
        apply(&ledger, batch).await.unwrap();
        assert!(ledger.inner.store.checkpoint(5).unwrap().unwrap().published);
        assert_eq!(
            ledger.inner.store.state().unwrap().foreign,
            7,
            "the checkpoint is not foreign"
        );
        // A checkpoint the ledger's own key signed over another root than the stream's stops the ledger,
        // naming the size: its key signed another history.
        let other_history = Checkpoint {
            origin: ledger.origin().to_owned(),
            size: 3,
            root: [9; 32],
        };
        let forged = StoredCheckpoint {
            size: 3,
            root: [9; 32],
            note: ledger.inner.signer.sign_checkpoint(&other_history),
            ..issued.clone()
        };
        let error = apply(&ledger, vec![checkpoint_message(9, &ledger, &forged)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::CheckpointMismatch {
                    size: 3,
                    sequence: 9,
                    ..
                }
            ),
            "{error}"
        );
        assert!(ledger.inner.store.checkpoint(3).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_redelivered_sequence_is_not_a_second_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        five(&ledger).await;
        let issued = ledger.checkpoint(true).await.unwrap();
        apply(&ledger, vec![checkpoint_message(6, &ledger, &issued)])
            .await
            .unwrap();
        // Messages 4 to 6 delivered again, then 7: only 7 is new, and no id counts as seen twice.
        let again = vec![
            message(4, "e4", vec![4]),
            message(5, "e5", vec![5]),
            checkpoint_message(6, &ledger, &issued),
            message(7, "e7", vec![7]),
        ];
        apply(&ledger, again).await.unwrap();
        assert_eq!(ledger.size(), 7);
        assert_eq!(
            ledger.inner.store.leaf(6).unwrap().unwrap().as_ref(),
            &[7][..]
        );
        assert_eq!(
            ledger.indexes_of("e5").unwrap(),
            vec![("transport".to_owned(), 4)]
        );
        // A whole batch of old messages changes nothing.
        apply(&ledger, vec![message(2, "e2", vec![2])])
            .await
            .unwrap();
        assert_eq!(ledger.size(), 7);
        // A gap stops the batch where it is: 8 is kept, 10 is not.
        let error = apply(
            &ledger,
            vec![message(8, "e8", vec![8]), message(10, "e10", vec![10])],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, Error::StreamMismatch(what) if what.contains("expected sequence 9")),
            "{error}"
        );
        assert_eq!(ledger.size(), 8);
    }

    #[tokio::test]
    async fn a_checkpoint_with_an_oversized_tree_size_is_ignored() {
        // Signed by the ledger's own key, but claiming more leaves than precede it, up to u64::MAX.
        for size in [6, u64::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let fresh = ledger(dir.path());
            five(&fresh).await;
            let checkpoint = Checkpoint {
                origin: fresh.origin().to_owned(),
                size,
                root: [1; 32],
            };
            ignored(
                &fresh,
                v1::CheckpointPublished {
                    origin: checkpoint.origin.clone(),
                    tree_size: size,
                    root_hash: checkpoint.root.to_vec(),
                    signed_note: fresh.inner.signer.sign_checkpoint(&checkpoint),
                },
            )
            .await;
        }
    }

    #[tokio::test]
    async fn a_checkpoint_with_a_31_byte_root_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        five(&ledger).await;
        let mut bogus = signed_fields(&ledger, 3, &ledger.inner.signer);
        bogus.root_hash.truncate(31);
        ignored(&ledger, bogus).await;
    }

    #[tokio::test]
    async fn a_checkpoint_whose_note_disagrees_with_its_fields_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        five(&ledger).await;
        // The fields say size 3 with its true root; the note, genuinely signed, is the one of size 5.
        let mut bogus = signed_fields(&ledger, 3, &ledger.inner.signer);
        bogus.signed_note = signed_fields(&ledger, 5, &ledger.inner.signer).signed_note;
        ignored(&ledger, bogus).await;
        // The note of another origin by the ledger's key, with this origin's fields.
        let dir = tempfile::tempdir().unwrap();
        let ledger = self::ledger(dir.path());
        five(&ledger).await;
        let mut bogus = signed_fields(&ledger, 3, &ledger.inner.signer);
        let elsewhere = Checkpoint {
            origin: "other.example/ledger".into(),
            size: 3,
            root: ledger.root(3).unwrap(),
        };
        let key = SigningKey::generate();
        let other_origin = NoteSigner::new("other.example/ledger", key).unwrap();
        bogus.signed_note = other_origin.sign_checkpoint(&elsewhere);
        ignored(&ledger, bogus).await;
    }

    #[tokio::test]
    async fn a_right_root_checkpoint_signed_by_another_key_is_ignored_and_the_ledger_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ledger.sign.key");
        SigningKey::generate().save(&key).unwrap();
        let store = dir.path().join("store");
        let ledger = ledger_with_key(&store, &key).unwrap();
        five(&ledger).await;
        // Someone who may publish as the ledger service, without its key: the right origin and root for
        // the current size, signed by a key of the same name, before the ledger issued one (finding 8).
        let impostor = NoteSigner::new(ledger.origin(), SigningKey::generate()).unwrap();
        ignored(&ledger, signed_fields(&ledger, 5, &impostor)).await;
        assert!(ledger.inner.store.latest_checkpoint().unwrap().is_none());
        // The ledger issues its own; a forged one of the same size does not mark it published.
        let issued = ledger.checkpoint(true).await.unwrap();
        assert_eq!(issued.size, 7);
        apply(
            &ledger,
            vec![published_message(8, signed_fields(&ledger, 7, &impostor))],
        )
        .await
        .unwrap();
        let kept = ledger.inner.store.checkpoint(7).unwrap().unwrap();
        assert_eq!(kept.note, issued.note);
        assert!(!kept.published);
        assert_eq!(ledger.checkpoint(false).await.unwrap(), kept);
        // And the next start accepts the store.
        drop(ledger);
        let reopened = ledger_with_key(&store, &key).expect("the ledger starts again");
        assert_eq!(reopened.size(), 8);
        assert_eq!(reopened.checkpoint(false).await.unwrap().note, issued.note);
    }

    /// A checkpoint is issued at the ledger's clock, and its event carries that time: moving the clock
    /// moves the next checkpoint's `issued_at`, and the store keeps it for a re-publication.
    #[tokio::test]
    async fn checkpoints_are_issued_at_the_clocks_time() {
        let dir = tempfile::tempdir().unwrap();
        let start = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let clock = hazchem_kit::ManualClock::new(start);
        let ledger = ledger(dir.path()).with_clock(Arc::new(clock.clone()));
        apply(&ledger, vec![message(1, "a", vec![1])])
            .await
            .unwrap();
        let first = ledger.checkpoint(true).await.unwrap();
        assert_eq!(first.issued_at, start);
        assert_eq!(
            checkpoint_event(ledger.origin(), &first).time,
            Some(hazchem_proto::time::timestamp(start))
        );
        clock.advance(chrono::TimeDelta::hours(6));
        apply(&ledger, vec![message(2, "b", vec![2])])
            .await
            .unwrap();
        let second = ledger.checkpoint(true).await.unwrap();
        assert_eq!(second.issued_at, start + chrono::TimeDelta::hours(6));
        assert_eq!(
            ledger.inner.store.checkpoint(2).unwrap().unwrap().issued_at,
            second.issued_at
        );
        // Asking again without growth issues nothing new: the stored time stands.
        clock.advance(chrono::TimeDelta::hours(1));
        assert_eq!(ledger.checkpoint(true).await.unwrap(), second);
    }

    #[tokio::test]
    async fn a_rebuilt_store_learns_the_checkpoints_of_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ledger.sign.key");
        SigningKey::generate().save(&key).unwrap();
        let first = ledger_with_key(dir.path().join("a").as_path(), &key).unwrap();
        let messages: Vec<Message> = (1..=10)
            .map(|i| message(i, &format!("e{i}"), vec![i as u8]))
            .collect();
        apply(&first, messages.clone()).await.unwrap();
        let issued = first.checkpoint(true).await.unwrap();
        let mut stream = messages;
        stream.push(checkpoint_message(11, &first, &issued));
        // Another store rebuilt from the same stream, by the same ledger (its key).
        let second = ledger_with_key(dir.path().join("b").as_path(), &key).unwrap();
        apply(&second, stream.clone()).await.unwrap();
        let latest = second.checkpoint(false).await.unwrap();
        assert_eq!(latest.size, 10);
        assert_eq!(latest.root, issued.root);
        assert_eq!(latest.note, issued.note);
        assert!(latest.published);
        // A ledger with another key learns nothing from them: they are not its checkpoints.
        let third = ledger(dir.path().join("c").as_path());
        apply(&third, stream).await.unwrap();
        assert_eq!(third.size(), 11);
        assert!(third.inner.store.latest_checkpoint().unwrap().is_none());
    }
}
