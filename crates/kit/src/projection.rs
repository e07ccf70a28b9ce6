//! One way to derive state from the stream.
//!
//! A service's state is a projection of the stream: it folds records, in stream order, into its store,
//! and saves the position it has folded up to atomically with the state. [`Projection`] is what the
//! service writes; [`follow`] is everything else, the same for every service:
//!
//! 1. **Start**: the stored position must be on this stream: not beyond its end, and the stream's message
//!    at the store's anchor (by default its position) must be the one the store was derived from
//!    ([`Projection::matches`]). A store that is not
//!    is rebuilt from sequence 1 ([`OnMismatch::Rebuild`]) or refused ([`OnMismatch::Refuse`]; the
//!    ledger, whose store holds what it signed).
//!    When [`FollowOptions::checkpoints`] names the ledger's key, the stream itself is then checked
//!    against the latest checkpoint the ledger signed into it ([`crate::checkpoint::verify_stream`]):
//!    a stream that disagrees with one was altered, and the projection refuses to fold it
//!    ([`FollowError::Tampered`]), whatever [`OnMismatch`] says.
//! 2. **Follow**: read every message from the position + 1, in batches of what is available (at most
//!    [`FollowOptions::max_batch`]); a message delivered twice is skipped, a gap stops the projection
//!    (the stream lost a message). Each batch is applied in a tracing span named after the projection,
//!    with the first and last sequence as fields. Reading that fails is retried with backoff (100 ms,
//!    doubling, at most 5 s); an apply that fails stops the projection, which then answers nothing stale
//!    (see [`crate::run_together`]).
//! 3. **Progress**: [`Progress`] tells waiters the position, whether the projection has caught up with
//!    the stream as it was at start, and why it stopped; [`ProjectionMetrics`] exports the position, the
//!    lag, apply latency and errors.
//! 4. **Shutdown**: the token is checked between batches; a batch being applied completes (its write is
//!    one atomic, durable step), so nothing is half applied.
//!
//! A projection that also publishes (the credit service's conflict warnings, the ledger's checkpoints)
//! publishes with deterministic ids in its own namespace: a rebuild or a retry re-derives the same events,
//! which the bus answers as duplicates, never as second events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _};
use hazchem_bus::{Bus, Filter, Message, Start};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::checkpoint::{StreamVerdict, verify_stream};
use crate::metrics::ProjectionMetrics;
use hazchem_verify::note::VerifierKey;

/// What to do with a store that does not belong to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// Empty it and fold the stream again from sequence 1 (derived state with nothing of its own).
    Rebuild,
    /// Stop with [`FollowError::Mismatch`] (a store that holds what the service signed).
    Refuse,
}

/// State derived from the stream, stored with the position it was derived up to.
pub trait Projection: Send + Sync + 'static {
    /// What apply, match and reset fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The projection's name, for spans, metrics and logs.
    fn name(&self) -> &'static str;

    /// The last stream sequence the store holds (0: none).
    fn position(&self) -> u64;

    /// The sequence of a stream message the store can recognise ([`Projection::matches`]), to check at
    /// start that the store was derived from this stream; by default the position itself. `None`: the
    /// store holds nothing to recognise (only the position is checked against the stream's end).
    fn anchor(&self) -> Option<u64> {
        Some(self.position()).filter(|p| *p > 0)
    }

    /// Whether `message`, the stream's message at [`Projection::anchor`], is the one the store saw there.
    fn matches(&self, message: &Message) -> Result<bool, Self::Error>;

    /// What to do when the store does not belong to the stream.
    fn on_mismatch(&self) -> OnMismatch {
        OnMismatch::Rebuild
    }

    /// Empties the store: the position becomes 0.
    fn reset(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Folds `batch`, consecutive messages from [`Projection::position`] + 1, into the store; when it
    /// returns `Ok`, the new state and position are durable. On an error, what was applied before it
    /// may be kept (with its position); the projection stops.
    fn apply(&self, batch: Vec<Message>) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why a projection stopped following the stream.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E: std::error::Error + 'static> {
    /// The store does not belong to this stream, and the projection refuses to rebuild it.
    #[error("{projection}: the store does not belong to this stream: {detail}")]
    Mismatch {
        projection: &'static str,
        detail: String,
    },
    /// The stream disagrees with a checkpoint the ledger signed: a message was altered, dropped or
    /// reordered after the ledger logged it.
    #[error(
        "{projection}: the stream disagrees with the ledger's signed checkpoint, so it was altered after \
         the ledger logged it; refusing to derive anything from it: {detail}"
    )]
    Tampered {
        projection: &'static str,
        detail: String,
    },
    /// A message is missing from the stream.
    #[error(
        "{projection}: stream gap: expected sequence {expected}, the stream delivered {got}; the stream \
         lost a message the projection cannot fold, so it stops"
    )]
    Gap {
        projection: &'static str,
        expected: u64,
        got: u64,
    },
    /// The projection's own apply, match or reset failed.
    #[error("{projection}: {source}")]
    Projection {
        projection: &'static str,
        #[source]
        source: E,
    },
}

/// How to follow.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// The most messages applied in one batch.
    pub max_batch: usize,
    pub metrics: ProjectionMetrics,
    /// The ledger's key: when set, the stream is checked against the latest checkpoint the ledger
    /// signed into it before anything is folded (see the module documentation).
    pub checkpoints: Option<VerifierKey>,
}

impl Default for FollowOptions {
    /// Batches of at most 1000, the process's metrics, and no checkpoint check.
    fn default() -> Self {
        FollowOptions {
            max_batch: 1000,
            metrics: ProjectionMetrics::global(),
            checkpoints: None,
        }
    }
}

/// Where a projection is, as its waiters see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowState {
    /// The last sequence applied.
    pub position: u64,
    /// Whether the projection has reached the stream's last sequence as it was when following started.
    pub caught_up: bool,
    /// Why it stopped following, if it did.
    pub stopped: Option<String>,
}

/// Why a wait for a position ended without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("not caught up with the stream (at {position} of {wanted}) within {waited:?}")]
    Timeout {
        position: u64,
        wanted: u64,
        waited: Duration,
    },
    #[error("stopped following the stream: {0}")]
    Stopped(String),
}

/// A projection's progress, shared with whoever waits for it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress(Arc<watch::Sender<FollowState>>);

impl Progress {
    /// Progress starting at `position` (the store's).
    pub fn new(position: u64) -> Self {
        Progress(Arc::new(watch::Sender::new(FollowState {
            position,
            ..FollowState::default()
        })))
    }

    /// The last sequence applied.
    pub fn position(&self) -> u64 {
        self.0.borrow().position
    }

    /// The whole state.
    pub fn state(&self) -> FollowState {
        self.0.borrow().clone()
    }

    /// Changes of the state.
    pub fn subscribe(&self) -> watch::Receiver<FollowState> {
        self.0.subscribe()
    }

    /// Records a new position (after a durable apply).
    pub fn advance(&self, position: u64) {
        self.0.send_if_modified(|s| {
            let changed = s.position != position;
            s.position = position;
            changed
        });
    }

    fn set_caught_up(&self) {
        self.0
            .send_if_modified(|s| !std::mem::replace(&mut s.caught_up, true));
    }

    fn stop(&self, why: String) {
        self.0.send_modify(|s| s.stopped = Some(why));
    }

    /// Waits until the position reaches `sequence`, at most `timeout`.
    pub async fn wait_for(&self, sequence: u64, timeout: Duration) -> Result<(), WaitError> {
        let mut rx = self.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.position >= sequence || s.stopped.is_some()),
        )
        .await;
        let state = self.state();
        if state.position >= sequence {
            return Ok(());
        }
        match (waited, state.stopped) {
            (_, Some(why)) => Err(WaitError::Stopped(why)),
            _ => Err(WaitError::Timeout {
                position: state.position,
                wanted: sequence,
                waited: timeout,
            }),
        }
    }

    /// Waits until the projection has caught up with the stream as it was at start (or stopped).
    pub async fn wait_caught_up(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|s| s.caught_up || s.stopped.is_some()).await;
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How often the lag behind the stream's end is measured while following.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Sleeps `delay` (then doubles it, up to [`LAST_RETRY`]); false if shut down first.
async fn back_off(delay: &mut Duration, shutdown: &CancellationToken) -> bool {
    let wait = *delay;
    *delay = (*delay * 2).min(LAST_RETRY);
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// Follows the stream into `projection` until `shutdown` (then `Ok`) or until it must stop; see the
/// module documentation. `progress` is kept up to date, and says why it stopped.
pub async fn follow<P: Projection>(
    projection: &P,
    bus: &Bus,
    options: &FollowOptions,
    progress: &Progress,
    shutdown: &CancellationToken,
) -> Result<(), FollowError<P::Error>> {
    options.metrics.following(projection.name(), true);
    let result = follow_inner(projection, bus, options, progress, shutdown).await;
    options.metrics.following(projection.name(), false);
    progress.advance(projection.position());
    match &result {
        Err(error) => {
            tracing::error!(projection = projection.name(), %error, "the projection stops");
            progress.stop(error.to_string());
        }
        Ok(()) => progress.stop("the service is shutting down".into()),
    }
    result
}

async fn follow_inner<P: Projection>(
    projection: &P,
    bus: &Bus,
    options: &FollowOptions,
    progress: &Progress,
    shutdown: &CancellationToken,
) -> Result<(), FollowError<P::Error>> {
    let name = projection.name();
    let own = |source| FollowError::Projection {
        projection: name,
        source,
    };
    let metrics = &options.metrics;
    let mut delay = FIRST_RETRY;
    // Start: the stream's end, and the store checked against it.
    let target = loop {
        match check_store(projection, bus).await {
            Ok(Ok(target)) => break target,
            Ok(Err(detail)) => {
                metrics.error(name, "mismatch");
                if projection.on_mismatch() == OnMismatch::Refuse {
                    return Err(FollowError::Mismatch {
                        projection: name,
                        detail,
                    });
                }
                tracing::warn!(projection = name, %detail, "the store does not belong to this stream; rebuilding it from sequence 1");
                projection.reset().await.map_err(own)?;
                progress.advance(0);
            }
            Err(Checking::Projection(error)) => return Err(own(error)),
            Err(Checking::Bus(error)) => {
                metrics.error(name, "read");
                tracing::warn!(projection = name, %error, "cannot read the stream to check the store; retrying");
                if !back_off(&mut delay, shutdown).await {
                    return Ok(());
                }
            }
        }
    };
    if let Some(key) = &options.checkpoints {
        check_stream(name, bus, key, metrics, shutdown).await?;
    }
    metrics.lag(name, target.saturating_sub(projection.position()));
    if projection.position() >= target {
        progress.set_caught_up();
    } else {
        tracing::info!(
            projection = name,
            from = projection.position() + 1,
            to = target,
            "catching up with the stream"
        );
    }
    // The lag is measured every LAG_EVERY, busy or idle, so that a stalled projection shows.
    let mut lag_tick = tokio::time::interval(LAG_EVERY);
    lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'read: loop {
        let mut stream = bus.read(Start::Sequence(projection.position() + 1), Filter::all());
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                _ = lag_tick.tick() => {
                    if let Ok(last) = bus.last_sequence().await {
                        metrics.lag(name, last.saturating_sub(projection.position()));
                    }
                    continue;
                }
                next = stream.next() => next,
            };
            let first = match next {
                Some(Ok(message)) => message,
                failed => {
                    metrics.error(name, "read");
                    match failed {
                        Some(Err(error)) => {
                            tracing::warn!(projection = name, %error, "reading the stream failed; reading again")
                        }
                        _ => tracing::warn!(
                            projection = name,
                            "the stream's reader ended; reading again"
                        ),
                    }
                    if !back_off(&mut delay, shutdown).await {
                        return Ok(());
                    }
                    continue 'read;
                }
            };
            let mut batch = vec![first];
            while batch.len() < options.max_batch {
                match stream.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    // An error or the end is met again, and handled, by the next read.
                    _ => break,
                }
            }
            let (batch, gap) = consecutive(batch, projection.position() + 1);
            let gap = gap.map(|(expected, got)| {
                metrics.error(name, "gap");
                FollowError::Gap {
                    projection: name,
                    expected,
                    got,
                }
            });
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                match gap {
                    Some(gap) => return Err(gap),
                    None => continue,
                }
            };
            let (first, last, count) = (first.sequence, last.sequence, batch.len() as u64);
            let span =
                tracing::info_span!("apply", projection = name, first, last, messages = count);
            let started = Instant::now();
            if let Err(error) = projection.apply(batch).instrument(span).await {
                metrics.error(name, "apply");
                return Err(own(error));
            }
            let position = projection.position();
            metrics.applied(name, count, position, started.elapsed());
            progress.advance(position);
            if let Some(gap) = gap {
                return Err(gap);
            }
            if position >= target {
                progress.set_caught_up();
            }
            delay = FIRST_RETRY;
        }
    }
}

/// The messages of `batch` a projection at `expected - 1` folds: those delivered again (before
/// `expected`) are dropped, and the run of consecutive sequences from `expected` is kept up to the first
/// gap, which is returned as (the sequence expected, the one delivered).
fn consecutive(batch: Vec<Message>, expected: u64) -> (Vec<Message>, Option<(u64, u64)>) {
    let mut kept = Vec::with_capacity(batch.len());
    for message in batch {
        let want = expected + kept.len() as u64;
        if message.sequence < want {
            tracing::warn!(
                sequence = message.sequence,
                want,
                "message delivered twice; ignored"
            );
            continue;
        }
        if message.sequence > want {
            return (kept, Some((want, message.sequence)));
        }
        kept.push(message);
    }
    (kept, None)
}

/// The stream against the ledger's latest signed checkpoint in it (retrying reads that fail).
async fn check_stream<E: std::error::Error + 'static>(
    name: &'static str,
    bus: &Bus,
    key: &VerifierKey,
    metrics: &ProjectionMetrics,
    shutdown: &CancellationToken,
) -> Result<(), FollowError<E>> {
    let mut delay = FIRST_RETRY;
    // The log key's signature and the records: what a projection needs to trust the stream.
    let requirements = hazchem_verify::verify::Requirements::default();
    loop {
        let verdict = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            verdict = verify_stream(bus, key.clone(), &requirements) => verdict,
        };
        match verdict {
            Ok(StreamVerdict::NoCheckpoint { messages }) => {
                tracing::info!(
                    projection = name,
                    messages,
                    "the stream holds no checkpoint of the ledger yet: nothing to check it against"
                );
                return Ok(());
            }
            Ok(StreamVerdict::Checked {
                result: Ok(verified),
                ..
            }) => {
                tracing::info!(
                    projection = name,
                    size = verified.checkpoint.size,
                    "the stream agrees with the ledger's latest signed checkpoint"
                );
                return Ok(());
            }
            Ok(StreamVerdict::Checked {
                result: Err(failure),
                ..
            }) => {
                metrics.error(name, "tampered");
                return Err(FollowError::Tampered {
                    projection: name,
                    detail: failure.to_string(),
                });
            }
            Err(error) => {
                metrics.error(name, "read");
                tracing::warn!(projection = name, %error, "cannot read the stream to check it against the ledger's checkpoint; retrying");
                if !back_off(&mut delay, shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

enum Checking<E> {
    Projection(E),
    Bus(hazchem_bus::Error),
}

/// The stream's last sequence if the store belongs to the stream; `Ok(Err(why))` if it does not.
async fn check_store<P: Projection>(
    projection: &P,
    bus: &Bus,
) -> Result<Result<u64, String>, Checking<P::Error>> {
    let last = bus.last_sequence().await.map_err(Checking::Bus)?;
    let position = projection.position();
    if position > last {
        return Ok(Err(format!(
            "the store holds up to sequence {position}, but the stream ends at {last}: the stream was \
             reset, or the store belongs to another stream"
        )));
    }
    let Some(anchor) = projection.anchor() else {
        return Ok(Ok(last));
    };
    let Some(message) = bus.get(anchor).await.map_err(Checking::Bus)? else {
        return Ok(Err(format!(
            "sequence {anchor}, which the store was derived from, is no longer in the stream"
        )));
    };
    if projection.matches(&message).map_err(Checking::Projection)? {
        Ok(Ok(last))
    } else {
        Ok(Err(format!(
            "the stream's message at sequence {anchor} ({}) is not the one the store was derived from",
            message.subject
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(sequences: &[u64]) -> Vec<Message> {
        sequences
            .iter()
            .map(|&sequence| Message {
                sequence,
                subject: format!("hazchem.ev.psb.alarm.e{sequence}"),
                time: chrono::DateTime::UNIX_EPOCH,
                payload: hazchem_bus::Bytes::new(),
            })
            .collect()
    }

    fn sequences(batch: &[Message]) -> Vec<u64> {
        batch.iter().map(|m| m.sequence).collect()
    }

    #[test]
    fn a_batch_is_folded_up_to_its_first_gap_and_redeliveries_are_dropped() {
        let (kept, gap) = consecutive(messages(&[3, 4, 5]), 3);
        assert_eq!((sequences(&kept), gap), (vec![3, 4, 5], None));
        // Delivered again: dropped.
        let (kept, gap) = consecutive(messages(&[1, 2, 3, 3, 4]), 3);
        assert_eq!((sequences(&kept), gap), (vec![3, 4], None));
        // A gap: what came before it is kept, and the gap named.
        let (kept, gap) = consecutive(messages(&[3, 4, 6, 7]), 3);
        assert_eq!((sequences(&kept), gap), (vec![3, 4], Some((5, 6))));
        let (kept, gap) = consecutive(messages(&[9]), 3);
        assert_eq!((sequences(&kept), gap), (vec![], Some((3, 9))));
    }
}
