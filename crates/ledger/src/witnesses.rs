//! The witnesses the ledger asks to cosign each checkpoint: in its own process ([`Witness`]), or a
//! witness a department runs itself, reached over the C2SP tlog-witness protocol ([`RemoteWitness`]).
//!
//! Both are asked the same way ([`WitnessPeer::cosign`]): an `add-checkpoint` request from the size the
//! ledger last saw that witness record (0 at first), with the consistency proof from it; a `409 Conflict`
//! names the size the witness actually recorded, and the ledger asks once more with the proof from that
//! size. A witness that refuses (a fork it was shown, a rollback, an unknown log), cannot be reached or
//! answers without a good cosignature is logged as an error naming it, and the checkpoint is issued
//! without its cosignature: the ledger never stops for a witness.

use std::sync::Mutex;

use hazchem_witness::{CallError, RemoteWitness};

use crate::merkle;
use crate::store::LedgerStore;
use crate::witness::{AddCheckpoint, Witness, WitnessKey};

/// One witness the ledger asks, with the size it last saw it record.
#[derive(Debug)]
pub struct WitnessPeer {
    key: WitnessKey,
    peer: Peer,
    /// What the ledger last saw this witness record of its log (a remote witness's state is its own).
    recorded: Mutex<u64>,
}

/// A few per ledger, made once: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Peer {
    Local(Mutex<Witness>),
    Remote(RemoteWitness),
}

impl From<Witness> for WitnessPeer {
    fn from(witness: Witness) -> Self {
        WitnessPeer {
            key: witness.key(),
            peer: Peer::Local(Mutex::new(witness)),
            recorded: Mutex::new(0),
        }
    }
}

impl From<RemoteWitness> for WitnessPeer {
    fn from(witness: RemoteWitness) -> Self {
        WitnessPeer {
            key: witness.key().clone(),
            peer: Peer::Remote(witness),
            recorded: Mutex::new(0),
        }
    }
}

impl WitnessPeer {
    /// The witness's key.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Where it is: `in process`, or its URL.
    pub fn place(&self) -> &str {
        match &self.peer {
            Peer::Local(_) => "in process",
            Peer::Remote(remote) => remote.url(),
        }
    }

    /// The size to submit from: an in-process witness's own state, else what the ledger last saw.
    fn old_size(&self, origin: &str) -> u64 {
        match &self.peer {
            Peer::Local(witness) => witness
                .lock()
                .expect("not poisoned")
                .last(origin)
                .map_or(0, |seen| seen.size),
            Peer::Remote(_) => *self.recorded.lock().expect("not poisoned"),
        }
    }

    async fn submit(&self, request: &AddCheckpoint, time: u64) -> Result<Vec<String>, CallError> {
        match &self.peer {
            Peer::Local(witness) => witness
                .lock()
                .expect("not poisoned")
                .add_checkpoint(request, time)
                .map(|line| vec![line])
                .map_err(|refusal| CallError::Refused {
                    url: "in process".into(),
                    status: refusal.status(),
                    recorded: refusal.recorded_size(),
                    message: refusal.to_string(),
                }),
            Peer::Remote(remote) => remote.add_checkpoint(request).await,
        }
    }

    /// Asks the witness to cosign `note` (the checkpoint of `size` leaves of the log `origin`, whose
    /// hashes `tree` holds); returns its cosignature lines, or `None` after logging why not. `time` is
    /// the cosignature time of an in-process witness (a remote one uses its own clock).
    pub async fn cosign(
        &self,
        tree: &LedgerStore,
        origin: &str,
        note: &str,
        size: u64,
        time: u64,
    ) -> Option<Vec<String>> {
        let mut old = self.old_size(origin);
        for attempt in 0..2 {
            if old > size {
                tracing::error!(
                    witness = %self.key, at = self.place(), recorded = old, tree_size = size,
                    "the witness recorded a larger checkpoint of this log than the ledger's: it was shown \
                     another history, or the ledger's store was rolled back; no cosignature"
                );
                return None;
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                match merkle::consistency_proof(tree, old, size) {
                    Ok(proof) => proof,
                    Err(error) => {
                        tracing::error!(witness = %self.key, from = old, tree_size = size, %error, "no consistency proof for a witness");
                        return None;
                    }
                }
            };
            let request = AddCheckpoint {
                old,
                proof,
                note: note.to_owned(),
            };
            match self.submit(&request, time).await {
                Ok(lines) => {
                    *self.recorded.lock().expect("not poisoned") = size;
                    return Some(lines);
                }
                Err(error) => match error.recorded_size() {
                    Some(recorded) if attempt == 0 && recorded != old => {
                        *self.recorded.lock().expect("not poisoned") = recorded;
                        old = recorded;
                    }
                    _ => {
                        tracing::error!(
                            witness = %self.key, at = self.place(), tree_size = size, reason = %error,
                            "a witness refused to cosign the checkpoint"
                        );
                        return None;
                    }
                },
            }
        }
        None
    }
}
