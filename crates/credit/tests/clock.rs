//! Time is injected: with one manual clock shared by the publishing core and the credit service, a
//! serious-dishonest listing's 36-month term ends when the clock is moved, not when the test waits: the
//! check at the clock's now stops finding it active, and the service's expiry timer announces the end of
//! its term (`credit_listing_expired`, dated at the end of the term, admitted by the same clock).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::Harness;
use hazchem_credit::Status;
use hazchem_credit::fixtures::{self, uscc};
use hazchem_credit::registry::{add_months, expiry_event_id};
use hazchem_domain::Department;
use hazchem_kit::{Clock as _, ManualClock};
use hazchem_proto::v1;

/// The shortest the configuration allows: the timer looks at the clock at least this often, so it
/// notices the clock move within about a second.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_ends_when_the_clock_moves_and_its_end_is_announced() {
    let start: DateTime<Utc> = "2026-11-20T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let mut h = Harness::with_clock(Arc::new(clock.clone())).await;
    h.config.expiry_interval = EXPIRY_INTERVAL;
    h.start_credit().await;
    let emergency = Department::Emergency;
    let e = uscc(1);
    let listed_at = start - TimeDelta::days(1);
    h.publish(
        emergency,
        &fixtures::penalty("p1", emergency, "P-1", &e, listed_at),
    )
    .await
    .unwrap();
    h.publish(
        emergency,
        &fixtures::listing(
            "l1",
            emergency,
            "CL-1",
            &e,
            v1::ListType::SeriousDishonest,
            "P-1",
            fixtures::usual_measures(),
            listed_at,
        ),
    )
    .await
    .unwrap();
    h.settle().await;
    let expires_at = add_months(listed_at, 36);
    let active = |at: DateTime<Utc>| -> Vec<String> {
        h.credit()
            .check(&e, emergency, at)
            .active
            .iter()
            .map(|v| v.listing.id.clone())
            .collect()
    };
    // Recorded at the clock's time, so known and active at the clock's now.
    assert_eq!(active(clock.now()), ["CL-1"]);
    assert_eq!(
        h.credit().history(&e, clock.now())[0].listing.expires_at,
        expires_at
    );

    // A minute before the end of the term (three years on, by the clock): still active.
    clock.set(expires_at - TimeDelta::minutes(1));
    assert_eq!(active(clock.now()), ["CL-1"]);

    // The clock passes the end of the term: inactive at now, expired in its history, and announced.
    clock.advance(TimeDelta::minutes(2));
    assert!(active(clock.now()).is_empty());
    assert_eq!(
        h.credit().history(&e, clock.now())[0].status,
        Status::Expired
    );
    let event = h.wait_for_event(&expiry_event_id("CL-1")).await;
    assert_eq!(event.time, Some(hazchem_proto::time::timestamp(expires_at)));
    let Some(v1::event::Payload::CreditListingExpired(announced)) = &event.payload else {
        panic!("not an expiry announcement: {event:?}");
    };
    assert_eq!(announced.listing_id, "CL-1");

    // The announcement comes back through the stream and is recorded on the listing.
    h.settle().await;
    assert!(
        h.credit().history(&e, clock.now())[0]
            .listing
            .expiry_announced
    );
    let announcements = h
        .events()
        .await
        .into_iter()
        .filter(|(token, _)| token == "credit_listing_expired")
        .count();
    assert_eq!(announcements, 1);
    h.stop_credit().await;
}
