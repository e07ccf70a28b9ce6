//! Verification that trusts nothing but the ledger's public key: used by `hazchem audit verify` against a
//! server and by `audit verify --bundle` offline.
//!
//! A [`Verifier`] is given a signed checkpoint (and optionally an earlier one the auditor saved), then the
//! records in leaf order (and optionally an inclusion proof each), and finally says whether everything
//! agrees. It trusts nothing it is given but the key: a record's position is the verifier's own count,
//! the index a record (or a server) claims is only compared with it, and there are no in-band markers:
//!
//! - both checkpoints carry a good signature by the trusted key;
//! - the records are exactly leaves `0..size`, in order, none missing, none repeated, none extra, each
//!   claiming the index of its position;
//! - the RFC 6962 root recomputed over the record bytes equals the checkpoint's root;
//! - the root over the first `m` records equals the earlier checkpoint's root (size `m`), and a
//!   consistency proof between the two checkpoints, if given, holds: the history was not rewritten
//!   after the earlier checkpoint was signed;
//! - each inclusion proof, if given, leads from its record to the checkpoint's root; a record that was
//!   altered fails its own proof and no other, which locates it exactly;
//! - if witnesses are required ([`Requirements::witnesses`]), the checkpoint carries good cosignatures by
//!   at least that many of the known witnesses: a checkpoint the log's key alone vouches for (a fork shown
//!   to this auditor, or a history re-signed with a stolen key) is refused;
//! - if origin signatures are checked ([`Requirements::origin`], [`crate::origin`]), every record's
//!   signature verifies with its department's key in the auditor's key registry, valid when the record
//!   was accepted, and every record of a type that must be signed is.
//!
//! Every disagreement becomes a [`Problem`] naming what and where; [`VerifyFailure`] lists them, first
//! disagreement first. The root is recomputed incrementally ([`Frontier`]); only the leaf hashes are kept
//! (32 bytes a record), so that a disagreement can be located afterwards (see [`locate_divergence`]).

use std::fmt;
use std::future::Future;

use crate::merkle::{self, Frontier, Hash, MemoryTree};
use crate::note::{Checkpoint, VerifierKey};
use crate::origin::{OriginCheck, OriginReport};
use crate::witness::{self, Cosignature, WitnessKey};

/// What an auditor requires of the record beyond the log key's signature on the checkpoint: the
/// verification functions (`bundle::verify_bundle`, and the ledger's online and stream verification)
/// take one.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// An earlier checkpoint the auditor saved: the log must extend it.
    pub since: Option<String>,
    /// Witnesses that must have cosigned the checkpoint.
    pub witnesses: Witnesses,
    /// The departments' keys and the rules to check origin signatures by; `None` leaves them unchecked.
    pub origin: Option<OriginCheck>,
}

/// Witnesses that must have cosigned a checkpoint: at least `required` of the `known` ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witnesses {
    pub known: Vec<WitnessKey>,
    pub required: usize,
}

/// The cosignatures found on a checkpoint that witnesses were required for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The good cosignatures by known witnesses.
    pub good: Vec<Cosignature>,
    pub required: usize,
    pub known: usize,
}

impl fmt::Display for Cosigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cosigned by {} of the {} known witnesses ({} required): {}",
            self.good.len(),
            self.known,
            self.required,
            self.good
                .iter()
                .map(|c| c.witness.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What kind of disagreement a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// The checkpoint is malformed or its signature does not verify with the trusted key.
    CheckpointSignature,
    /// The earlier checkpoint is malformed, does not verify, or is larger than the checkpoint.
    EarlierCheckpoint,
    /// A record's data could not be read.
    Malformed,
    /// A record is not where its index says.
    OutOfOrder,
    /// A leaf is not among the records.
    Missing,
    /// A record is beyond the checkpoint's tree size.
    Unexpected,
    /// A record is not the one the checkpoint covers (its inclusion proof fails, or it was located).
    Altered,
    /// The root over the records differs from the checkpoint's.
    RootMismatch,
    /// The records do not extend the earlier checkpoint.
    Fork,
    /// The consistency proof between the two checkpoints fails.
    Inconsistent,
    /// Fewer of the known witnesses cosigned the checkpoint than required.
    Witnesses,
    /// A record's origin signature is missing where required, or does not verify with a trusted key.
    OriginSignature,
}

/// One disagreement, naming what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The leaf it concerns, when known.
    pub index: Option<u64>,
    /// One sentence for the auditor.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, index: Option<u64>, message: impl Into<String>) -> Self {
        Problem {
            kind,
            index,
            message: message.into(),
        }
    }

    /// Order: problems with the checkpoints first (they invalidate everything), then by leaf index, then
    /// the located problems before the unlocated ones.
    fn sort_key(&self) -> (u8, u64, ProblemKind) {
        match self.kind {
            ProblemKind::CheckpointSignature
            | ProblemKind::EarlierCheckpoint
            | ProblemKind::Witnesses => (0, 0, self.kind),
            _ => (1, self.index.unwrap_or(u64::MAX), self.kind),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The verification failed; the problems are sorted, the first disagreement first.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The problems kept (at most a thousand).
    pub problems: Vec<Problem>,
    /// How many more problems were found than kept.
    dropped: u64,
    /// The checkpoint that was checked against, if it could be read.
    pub checkpoint: Option<Checkpoint>,
    leaf_hashes: Vec<Hash>,
}

impl VerifyFailure {
    pub(crate) fn only(problem: Problem) -> Self {
        VerifyFailure {
            problems: vec![problem],
            dropped: 0,
            checkpoint: None,
            leaf_hashes: Vec::new(),
        }
    }

    /// The first disagreement.
    pub fn first(&self) -> &Problem {
        &self.problems[0]
    }

    /// How many problems were found, kept or not.
    pub fn total(&self) -> u64 {
        self.problems.len() as u64 + self.dropped
    }

    /// Whether the root disagrees but no problem names the altered leaf yet (no inclusion proofs were
    /// given): [`locate_divergence`] can find it with consistency proofs from the server.
    pub fn needs_location(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.kind == ProblemKind::RootMismatch)
            && !self.problems.iter().any(|p| {
                matches!(
                    p.kind,
                    ProblemKind::Altered | ProblemKind::OutOfOrder | ProblemKind::Missing
                )
            })
    }

    /// The leaf hashes of the records, in order (up to the first out-of-order record).
    pub fn leaf_hashes(&self) -> &[Hash] {
        &self.leaf_hashes
    }

    /// Records the leaf found by [`locate_divergence`].
    pub fn add_located(&mut self, index: u64) {
        self.problems.push(Problem::new(
            ProblemKind::Altered,
            Some(index),
            format!(
                "leaf {index}: the record differs from the one the checkpoint covers (every record before \
                 it agrees; located with consistency proofs)"
            ),
        ));
        self.problems.sort_by_key(Problem::sort_key);
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first())?;
        if self.total() > 1 {
            write!(f, " (and {} more problem(s))", self.total() - 1)?;
        }
        Ok(())
    }
}

impl fmt::Debug for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyFailure")
            .field("problems", &self.problems)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl std::error::Error for VerifyFailure {}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint, with a good signature, whose root the records reproduce.
    pub checkpoint: Checkpoint,
    /// The earlier checkpoint the log was shown to extend.
    pub earlier: Option<Checkpoint>,
    /// How many records were checked.
    pub records: u64,
    /// How many inclusion proofs were checked.
    pub inclusion_proofs: u64,
    /// Whether a consistency proof between the checkpoints was checked.
    pub consistency_proof: bool,
    /// The witnesses' cosignatures, when they were required.
    pub cosigned: Option<Cosigned>,
    /// What the origin signatures were, when they were checked.
    pub origin: Option<OriginReport>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verified: {} records reproduce the signed root of {} at tree size {} ({})",
            self.records,
            self.checkpoint.origin,
            self.checkpoint.size,
            hex::encode(self.checkpoint.root)
        )?;
        if self.inclusion_proofs > 0 {
            write!(f, "; {} inclusion proofs hold", self.inclusion_proofs)?;
        }
        if let Some(earlier) = &self.earlier {
            write!(
                f,
                "; the log extends the earlier checkpoint of size {}{}",
                earlier.size,
                if self.consistency_proof {
                    " (consistency proof holds)"
                } else {
                    ""
                }
            )?;
        }
        if let Some(origin) = &self.origin {
            write!(f, "\n{origin}")?;
        }
        if let Some(cosigned) = &self.cosigned {
            write!(f, "\n{cosigned}")?;
        }
        Ok(())
    }
}

/// At most this many problems are kept; the rest are counted ([`VerifyFailure::total`]).
const MAX_PROBLEMS: usize = 1000;

/// Checks records against a signed checkpoint; see the module documentation.
///
/// A record's position is the verifier's own count of the records it was given, never what the record
/// (or the server that sent it) claims: the record at position `i` is hashed as leaf `i`, its inclusion
/// proof is checked at `i`, and a claimed index that is not `i` is itself a problem. Nothing in a record
/// can stop the root from being compared: [`Verifier::finish`] succeeds only when exactly `size` records
/// were given, every one readable and where it claims to be, and their root is the signed one.
#[derive(Debug)]
pub struct Verifier {
    key: VerifierKey,
    checkpoint: Checkpoint,
    /// The signed note, with any cosignatures.
    note: String,
    earlier: Option<Checkpoint>,
    frontier: Frontier,
    leaf_hashes: Vec<Hash>,
    /// Records received so far: the position of the next one.
    position: u64,
    /// False once a record below the tree size could not be read: its leaf hash is unknown, so no root
    /// can be computed (the unreadable record is a problem of its own).
    root_known: bool,
    /// The first record whose claimed index is not its position, and whether its position was claimed
    /// by a later record (a swap rather than a gap).
    first_misplaced: Option<Misplaced>,
    /// Records beyond the checkpoint's tree size.
    extra: u64,
    problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    dropped: u64,
    inclusion_proofs: u64,
    consistency_proof: bool,
    cosigned: Option<Cosigned>,
    origin: Option<(OriginCheck, OriginReport)>,
}

#[derive(Debug, Clone, Copy)]
struct Misplaced {
    position: u64,
    claimed: u64,
    claimed_later: bool,
}

impl Verifier {
    /// Starts a verification against `checkpoint_note`, trusting only `key`.
    pub fn new(key: VerifierKey, checkpoint_note: &str) -> Result<Self, VerifyFailure> {
        let checkpoint = key.open_checkpoint(checkpoint_note).map_err(|e| {
            VerifyFailure::only(Problem::new(
                ProblemKind::CheckpointSignature,
                None,
                format!("checkpoint refused: {e}"),
            ))
        })?;
        Ok(Verifier {
            key,
            checkpoint,
            note: checkpoint_note.to_owned(),
            earlier: None,
            frontier: Frontier::new(),
            leaf_hashes: Vec::new(),
            position: 0,
            root_known: true,
            first_misplaced: None,
            extra: 0,
            problems: Vec::new(),
            dropped: 0,
            inclusion_proofs: 0,
            consistency_proof: false,
            cosigned: None,
            origin: None,
        })
    }

    /// Starts a verification against `checkpoint_note` trusting only `key`, with what `requirements`
    /// asks: the earlier checkpoint, the witnesses' cosignatures, origin signatures.
    pub fn with_requirements(
        key: VerifierKey,
        checkpoint_note: &str,
        requirements: &Requirements,
    ) -> Result<Self, VerifyFailure> {
        let mut verifier =
            Verifier::new(key, checkpoint_note)?.with_witnesses(&requirements.witnesses)?;
        if let Some(since) = &requirements.since {
            verifier = verifier.with_earlier(since)?;
        }
        if let Some(check) = &requirements.origin {
            verifier = verifier.with_origin_check(check.clone());
        }
        Ok(verifier)
    }

    /// Requires good cosignatures by at least `witnesses.required` of the known witnesses on the
    /// checkpoint's note; nothing when none are required.
    pub fn with_witnesses(mut self, witnesses: &Witnesses) -> Result<Self, VerifyFailure> {
        if witnesses.required == 0 {
            return Ok(self);
        }
        match witness::require_cosignatures(&self.note, &witnesses.known, witnesses.required) {
            Ok(good) => {
                self.cosigned = Some(Cosigned {
                    good,
                    required: witnesses.required,
                    known: witnesses.known.len(),
                });
                Ok(self)
            }
            Err(too_few) => Err(VerifyFailure {
                checkpoint: Some(self.checkpoint.clone()),
                ..VerifyFailure::only(Problem::new(
                    ProblemKind::Witnesses,
                    None,
                    too_few.to_string(),
                ))
            }),
        }
    }

    /// Also checks every record's origin signature ([`crate::origin`]). Call before pushing records.
    #[must_use]
    pub fn with_origin_check(mut self, check: OriginCheck) -> Self {
        self.origin = Some((check, OriginReport::default()));
        self
    }

    /// Also checks that the log extends `earlier_note`, a checkpoint the auditor saved before. Call before
    /// pushing records.
    pub fn with_earlier(mut self, earlier_note: &str) -> Result<Self, VerifyFailure> {
        let earlier = self.key.open_checkpoint(earlier_note).map_err(|e| {
            VerifyFailure::only(Problem::new(
                ProblemKind::EarlierCheckpoint,
                None,
                format!("earlier checkpoint refused: {e}"),
            ))
        })?;
        if earlier.origin != self.checkpoint.origin {
            return Err(VerifyFailure::only(Problem::new(
                ProblemKind::EarlierCheckpoint,
                None,
                format!(
                    "the earlier checkpoint is of log {:?}, the checkpoint of log {:?}",
                    earlier.origin, self.checkpoint.origin
                ),
            )));
        }
        if earlier.size > self.checkpoint.size {
            return Err(VerifyFailure::only(Problem::new(
                ProblemKind::EarlierCheckpoint,
                None,
                format!(
                    "the log shrank: the earlier checkpoint covers {} leaves, the checkpoint only {}",
                    earlier.size, self.checkpoint.size
                ),
            )));
        }
        if earlier.size == 0 && earlier.root != merkle::EMPTY_ROOT {
            return Err(VerifyFailure::only(Problem::new(
                ProblemKind::EarlierCheckpoint,
                None,
                "the earlier checkpoint of size 0 does not carry the empty tree's root",
            )));
        }
        self.earlier = Some(earlier);
        Ok(self)
    }

    /// The checkpoint being verified against (its signature is good).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The earlier checkpoint, if any.
    pub fn earlier(&self) -> Option<&Checkpoint> {
        self.earlier.as_ref()
    }

    fn problem(&mut self, problem: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.dropped += 1;
        }
    }

    /// Checks a consistency proof from the earlier checkpoint to the checkpoint (as the server gives it).
    pub fn consistency_proof(&mut self, proof: &[Hash]) {
        let Some(earlier) = &self.earlier else {
            return;
        };
        match merkle::verify_consistency(
            earlier.size,
            self.checkpoint.size,
            proof,
            &earlier.root,
            &self.checkpoint.root,
        ) {
            Ok(()) => self.consistency_proof = true,
            Err(e) => {
                let problem = Problem::new(
                    ProblemKind::Inconsistent,
                    Some(earlier.size),
                    format!(
                        "forked history: the checkpoint of size {} is not consistent with the earlier \
                         checkpoint of size {}: {e}",
                        self.checkpoint.size, earlier.size
                    ),
                );
                self.problem(problem);
            }
        }
    }

    /// A consistency proof that could not be read; `what` says where.
    pub fn malformed_consistency_proof(&mut self, what: impl Into<String>) {
        let index = self.earlier.as_ref().map(|e| e.size);
        self.problem(Problem::new(ProblemKind::Inconsistent, index, what.into()));
    }

    /// The next record could not be read; `what` says where (a line number, say). It takes a position
    /// like any record.
    pub fn push_malformed(&mut self, what: impl Into<String>) {
        let position = self.position;
        self.position += 1;
        if position < self.checkpoint.size {
            self.root_known = false;
        } else {
            self.extra += 1;
        }
        self.problem(Problem::new(
            ProblemKind::Malformed,
            Some(position),
            format!("leaf {position}: {}", what.into()),
        ));
    }

    /// The next record: the leaf index it claims, its exact bytes, and optionally its inclusion proof
    /// against the checkpoint. It is checked as the leaf at its position (the number of records given
    /// before it), whatever it claims.
    pub fn push(&mut self, claimed: u64, record: &[u8], proof: Option<&[Hash]>) {
        let position = self.position;
        self.position += 1;
        let size = self.checkpoint.size;
        if position >= size {
            self.extra += 1;
            if self.extra == 1 {
                self.problem(Problem::new(
                    ProblemKind::Unexpected,
                    Some(position),
                    format!(
                        "leaf {position}: a record beyond the checkpoint, which covers {size} leaves"
                    ),
                ));
            }
            return;
        }
        match &mut self.first_misplaced {
            Some(first) => first.claimed_later |= claimed == first.position,
            None if claimed != position => {
                self.first_misplaced = Some(Misplaced {
                    position,
                    claimed,
                    claimed_later: false,
                })
            }
            None => {}
        }
        if let Some((check, report)) = &mut self.origin {
            match check.check(record) {
                Ok(outcome) => report.add(outcome),
                Err(message) => {
                    let problem = Problem::new(
                        ProblemKind::OriginSignature,
                        Some(position),
                        format!("leaf {position}: {message}"),
                    );
                    self.problem(problem);
                }
            }
        }
        let leaf = merkle::leaf_hash(record);
        if let Some(proof) = proof {
            self.inclusion_proofs += 1;
            if let Err(e) =
                merkle::verify_inclusion(&leaf, position, size, proof, &self.checkpoint.root)
            {
                self.problem(Problem::new(
                    ProblemKind::Altered,
                    Some(position),
                    format!(
                        "leaf {position}: the record was altered: its inclusion proof does not lead to the \
                         signed root of size {size} ({e})"
                    ),
                ));
            }
        }
        if !self.root_known {
            return;
        }
        self.frontier.push(leaf);
        self.leaf_hashes.push(leaf);
        if let Some(earlier) = &self.earlier
            && self.frontier.size() == earlier.size
        {
            self.check_earlier_root();
        }
    }

    fn check_earlier_root(&mut self) {
        let Some(earlier) = &self.earlier else {
            return;
        };
        let root = self.frontier.root();
        if root != earlier.root {
            let problem = Problem::new(
                ProblemKind::Fork,
                Some(earlier.size.saturating_sub(1)),
                format!(
                    "forked history: the first {m} records hash to {}, but the earlier checkpoint of size {m} \
                     says {}: a record at an index below {m} was changed after that checkpoint was signed",
                    hex::encode(root),
                    hex::encode(earlier.root),
                    m = earlier.size,
                ),
            );
            self.problem(problem);
        }
    }

    /// What the first misplaced record means: a swap, a repeat, a claim beyond the tree, or a gap.
    fn misplaced_problem(first: Misplaced, size: u64) -> Problem {
        let Misplaced {
            position,
            claimed,
            claimed_later,
        } = first;
        let message = if claimed >= size {
            format!(
                "leaf {position}: the record claims index {claimed}, beyond the checkpoint's tree size {size}"
            )
        } else if claimed_later {
            format!("leaf {position}: index out of order (expected {position}, got {claimed})")
        } else if claimed < position {
            format!(
                "leaf {position}: index out of order (expected {position}, got {claimed} again: leaf \
                 {claimed} appears twice)"
            )
        } else {
            return Problem::new(
                ProblemKind::Missing,
                Some(position),
                format!("leaf {position} missing (the next record is leaf {claimed})"),
            );
        };
        Problem::new(ProblemKind::OutOfOrder, Some(position), message)
    }

    /// Finishes: `Ok` only if exactly the checkpoint's leaves were given, each readable and where it
    /// claims to be, and they reproduce the signed root.
    pub fn finish(mut self) -> Result<Verified, VerifyFailure> {
        let size = self.checkpoint.size;
        if let Some(first) = self.first_misplaced {
            let problem = Self::misplaced_problem(first, size);
            self.problem(problem);
        }
        if self.position < size {
            let last = self.position;
            let message = if last == 0 {
                format!(
                    "leaf 0 missing: there are no records, but the checkpoint covers {size} leaves"
                )
            } else {
                format!(
                    "leaf {last} missing: the records end at leaf {}, but the checkpoint covers {size} leaves",
                    last - 1
                )
            };
            self.problem(Problem::new(ProblemKind::Missing, Some(last), message));
        } else if self.root_known {
            let root = self.frontier.root();
            if root != self.checkpoint.root {
                self.problem(Problem::new(
                    ProblemKind::RootMismatch,
                    Some(size),
                    format!(
                        "root at size {size} does not match the checkpoint: the records hash to {}, the \
                         signed root is {}: a record at an index below {size} was altered",
                        hex::encode(root),
                        hex::encode(self.checkpoint.root)
                    ),
                ));
            }
        }
        let honest = self.problems.is_empty()
            && self.dropped == 0
            && self.first_misplaced.is_none()
            && self.extra == 0
            && self.root_known
            && self.position == size;
        if honest {
            return Ok(Verified {
                checkpoint: self.checkpoint,
                earlier: self.earlier,
                records: self.position,
                inclusion_proofs: self.inclusion_proofs,
                consistency_proof: self.consistency_proof,
                cosigned: self.cosigned,
                origin: self.origin.map(|(_, report)| report),
            });
        }
        self.problems.sort_by_key(Problem::sort_key);
        Err(VerifyFailure {
            problems: self.problems,
            dropped: self.dropped,
            checkpoint: Some(self.checkpoint),
            leaf_hashes: self.leaf_hashes,
        })
    }
}

/// Finds the first leaf where local records diverge from a signed tree, with `O(log n)` consistency
/// proofs: the prefix of `k` local leaves is part of the signed tree exactly when a consistency proof from
/// `k` to `size` holds for the local root of `k`; that is true up to the first altered leaf and false from
/// there on. `consistency(first, second)` fetches a proof from the server (which cannot forge one).
///
/// Returns the index of the first divergent leaf, or `None` if all `size` local leaves agree.
pub async fn locate_divergence<F, Fut, E>(
    leaf_hashes: &[Hash],
    size: u64,
    signed_root: &Hash,
    mut consistency: F,
) -> Result<Option<u64>, E>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<Hash>, E>>,
{
    let size = size.min(leaf_hashes.len() as u64);
    if size == 0 {
        return Ok(None);
    }
    let tree = MemoryTree::from_leaf_hashes(leaf_hashes[..size as usize].iter().copied());
    let mut agrees = async |k: u64| -> Result<bool, E> {
        let local = merkle::root(&tree, k).unwrap_or(merkle::EMPTY_ROOT);
        if k == size {
            return Ok(&local == signed_root);
        }
        let proof = consistency(k, size).await?;
        Ok(merkle::verify_consistency(k, size, &proof, &local, signed_root).is_ok())
    };
    if agrees(size).await? {
        return Ok(None);
    }
    // Invariant: prefix `lo` agrees (0 trivially), prefix `hi` does not.
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if agrees(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(hi - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a future that never waits (the proof source below answers at once), with one poll:
    /// `locate_divergence` needs no async runtime.
    fn ready<F: Future>(future: F) -> F::Output {
        let future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the future waited, but nothing it awaits can"),
        }
    }

    #[test]
    fn bisection_with_consistency_proofs_finds_the_first_altered_leaf() {
        let truth =
            MemoryTree::from_leaf_hashes((0..100u32).map(|i| merkle::leaf_hash(&i.to_be_bytes())));
        let root = truth.root();
        let server = |first: u64, second: u64| {
            let proof = merkle::consistency_proof(&truth, first, second);
            async move { proof }
        };
        for altered in [0usize, 1, 37, 63, 64, 99] {
            let mut local = truth.leaves().to_vec();
            local[altered] = merkle::leaf_hash(b"altered");
            let found = ready(locate_divergence(&local, 100, &root, server)).unwrap();
            assert_eq!(found, Some(altered as u64));
        }
        let found = ready(locate_divergence(truth.leaves(), 100, &root, server)).unwrap();
        assert_eq!(found, None);
    }
}
