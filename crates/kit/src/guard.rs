//! Guards: services that must approve an event before it is appended, because whether it is valid
//! depends on state derived from the record (a repair needs an existing listing; only the listing
//! department may repair it). The credit service guards credit decisions.
//!
//! Guarded events are reviewed and appended one at a time, so a review always sees every guarded event
//! appended before it (the guard waits until its state has caught up with the stream).

use hazchem_pki::Principal;
use hazchem_proto::v1;
use tonic::Status;

/// Reviews events of some types before they are appended.
#[tonic::async_trait]
pub trait EventGuard: Send + Sync + 'static {
    /// The event type tokens this guard reviews.
    fn tokens(&self) -> &[&'static str];

    /// Approves the event or refuses it with a precise status. `up_to` is the stream's last sequence
    /// when the review started: the guard's state must include it before deciding.
    async fn review(
        &self,
        principal: &Principal,
        event: &v1::Event,
        up_to: u64,
    ) -> Result<(), Status>;
}
