//! Restart and rebuild: every query answers the same before a restart, after it, and after the store is
//! lost and rebuilt from the stream; warnings and term-end announcements are on the stream exactly once.

#![allow(clippy::disallowed_methods)] // tests: the scenario is dated from wall time, as the gateway it publishes through

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use common::Harness;
use hazchem_credit::fixtures::{self, uscc};
use hazchem_credit::registry::{add_months, conflict_warning_id, expiry_event_id};
use hazchem_credit::{ListQuery, Status};
use hazchem_domain::{Department, Uscc};
use hazchem_proto::v1;

const DEPARTMENTS: [Department; 4] = [
    Department::Emergency,
    Department::Transport,
    Department::Approval,
    Department::Fire,
];

/// Every answer the registry gives about `enterprises` at `instants`, in a comparable form.
fn answers(h: &Harness, enterprises: &[Uscc], instants: &[DateTime<Utc>]) -> Vec<String> {
    let credit = h.credit();
    let mut out = Vec::new();
    for at in instants {
        for e in enterprises {
            for d in DEPARTMENTS {
                out.push(format!(
                    "check {e} {d} {at:?}: {:?}",
                    credit.check(e, d, *at)
                ));
            }
            out.push(format!("history {e} {at:?}: {:?}", credit.history(e, *at)));
        }
        for status in [
            None,
            Some(Status::Active),
            Some(Status::Expired),
            Some(Status::Repaired),
        ] {
            let mut query = ListQuery {
                department: None,
                list_type: None,
                status,
                as_of: *at,
                page_size: 2,
                after: 0,
            };
            loop {
                let page = credit.list(&query);
                out.push(format!(
                    "list {status:?} {at:?} after {}: {page:?}",
                    query.after
                ));
                match page.next_after {
                    Some(after) => query.after = after,
                    None => break,
                }
            }
        }
    }
    out
}

/// Both sides of every instant the registry knows of.
fn instants(h: &Harness, enterprises: &[Uscc]) -> Vec<DateTime<Utc>> {
    let now = Utc::now();
    let mut set = BTreeSet::new();
    for e in enterprises {
        for view in h.credit().history(e, now) {
            let l = &view.listing;
            let mut times = vec![l.listed_at, l.recorded_at, l.expires_at];
            for c in &l.changes {
                times.push(c.at);
                times.push(c.recorded_at);
            }
            for t in times {
                set.insert(t - TimeDelta::nanoseconds(1));
                set.insert(t);
            }
        }
    }
    set.insert(now);
    set.into_iter().collect()
}

fn count(events: &[(String, v1::Event)], token: &str) -> usize {
    events.iter().filter(|(t, _)| t == token).count()
}

#[tokio::test]
async fn restart_and_rebuild_answer_every_query_the_same() {
    let mut h = Harness::new().await;
    h.start_credit().await;
    let now = Utc::now();
    let emergency = Department::Emergency;
    let (e1, e2, e3, e9) = (uscc(11), uscc(12), uscc(13), uscc(19));

    // E1: listed three years and a day ago: its term ended yesterday.
    let old = now - TimeDelta::days(3 * 365 + 2);
    h.publish(
        emergency,
        &fixtures::penalty("p1", emergency, "P-1", &e1, old),
    )
    .await
    .unwrap();
    h.publish(
        emergency,
        &fixtures::listing(
            "l1",
            emergency,
            "CL-1",
            &e1,
            v1::ListType::SeriousDishonest,
            "P-1",
            fixtures::usual_measures(),
            old,
        ),
    )
    .await
    .unwrap();
    // E2: listed 400 days ago, repaired at twelve months, the repair revoked ten days ago.
    let listed = now - TimeDelta::days(400);
    let repaired = add_months(listed, 12);
    let revoked = now - TimeDelta::days(10);
    h.publish(
        emergency,
        &fixtures::penalty("p2", emergency, "P-2", &e2, listed),
    )
    .await
    .unwrap();
    h.publish(
        emergency,
        &fixtures::listing(
            "l2",
            emergency,
            "CL-2",
            &e2,
            v1::ListType::SeriousDishonest,
            "P-2",
            fixtures::usual_measures(),
            listed,
        ),
    )
    .await
    .unwrap();
    h.publish(
        emergency,
        &fixtures::repair("r2", emergency, "CL-2", &e2, repaired),
    )
    .await
    .unwrap();
    h.publish(
        emergency,
        &fixtures::revocation("v2", emergency, "CL-2", &e2, revoked),
    )
    .await
    .unwrap();
    // E3: on the key-supervision list of transport, with a licence restriction for everyone.
    let transport = Department::Transport;
    let recent = now - TimeDelta::days(100);
    h.publish(
        transport,
        &fixtures::penalty("p3", transport, "P-3", &e3, recent),
    )
    .await
    .unwrap();
    h.publish(
        transport,
        &fixtures::listing(
            "l3",
            transport,
            "CL-3",
            &e3,
            v1::ListType::KeySupervision,
            "P-3",
            vec![fixtures::measure("licence_restriction", &[])],
            recent,
        ),
    )
    .await
    .unwrap();
    // Grants: to E2 after the revocation (conflict), to E2 while repaired (none), to E3 by transport
    // (conflict), to E1 after its term (none), to an unlisted enterprise (none).
    let kind = v1::LicenceKind::SafetyProduction;
    let grants = [
        (
            "g-e2-restored",
            emergency,
            kind,
            &e2,
            now - TimeDelta::days(5),
        ),
        (
            "g-e2-repaired",
            emergency,
            kind,
            &e2,
            now - TimeDelta::days(20),
        ),
        (
            "g-e3",
            transport,
            v1::LicenceKind::RoadTransport,
            &e3,
            now - TimeDelta::days(1),
        ),
        (
            "g-e1-expired",
            emergency,
            kind,
            &e1,
            now - TimeDelta::hours(1),
        ),
        ("g-e9", emergency, kind, &e9, now - TimeDelta::hours(1)),
    ];
    for (id, d, kind, holder, at) in grants {
        h.publish(d, &fixtures::licence_issued(id, d, kind, holder, at))
            .await
            .unwrap();
    }
    h.settle().await;
    // The end of E1's term is announced.
    let expired = h.wait_for_event(&expiry_event_id("CL-1")).await;
    let Some(v1::event::Payload::CreditListingExpired(p)) = expired.payload else {
        panic!("not an expiry")
    };
    assert_eq!(p.listing_id, "CL-1");
    h.settle().await;

    let events = h.events().await;
    let warnings: Vec<&v1::Event> = events
        .iter()
        .filter(|(t, _)| t == "warning_raised")
        .map(|(_, e)| e)
        .collect();
    let ids: BTreeSet<&str> = warnings.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            conflict_warning_id("g-e2-restored"),
            conflict_warning_id("g-e3")
        ]
        .iter()
        .map(String::as_str)
        .collect()
    );
    for w in &warnings {
        let Some(v1::event::Payload::WarningRaised(w)) = &w.payload else {
            unreachable!()
        };
        assert_eq!(w.rule_id, "credit.conflict");
        if w.related_event_ids[0] == "g-e2-restored" {
            assert_eq!(w.related_event_ids, ["g-e2-restored", "l2"]);
            assert_eq!(w.level, v1::WarningLevel::Red as i32);
            assert_eq!(w.addressed_to, [v1::Department::Emergency as i32]);
        } else {
            assert_eq!(w.related_event_ids, ["g-e3", "l3"]);
            assert_eq!(w.level, v1::WarningLevel::Orange as i32);
            assert_eq!(
                w.addressed_to,
                [
                    v1::Department::Transport as i32,
                    v1::Department::Emergency as i32
                ]
            );
        }
    }

    let enterprises = [e1.clone(), e2.clone(), e3.clone(), e9.clone()];
    let instants = instants(&h, &enterprises);
    assert!(instants.len() > 20);
    let before = answers(&h, &enterprises, &instants);
    // Sanity: E2 is active now, E1 expired, E3 active.
    let now = Utc::now();
    assert_eq!(h.credit().check(&e2, emergency, now).active.len(), 1);
    assert!(h.credit().check(&e1, emergency, now).active.is_empty());
    assert_eq!(
        h.credit().check(&e3, Department::Fire, now).measures[0].code,
        "licence_restriction"
    );

    // Restart on the same store.
    h.stop_credit().await;
    h.start_credit().await;
    h.settle().await;
    assert_eq!(answers(&h, &enterprises, &instants), before);

    // Lose the store: rebuilt from sequence 1.
    h.stop_credit().await;
    std::fs::remove_dir_all(h.state_dir()).unwrap();
    h.start_credit().await;
    h.settle().await;
    assert_eq!(answers(&h, &enterprises, &instants), before);
    // Give the expiry timer its turn; nothing is raised or announced twice.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    h.settle().await;
    let after = h.events().await;
    assert_eq!(count(&after, "warning_raised"), 2);
    assert_eq!(count(&after, "credit_listing_expired"), 1);
    assert_eq!(after.len(), events.len());
    h.stop_credit().await;
}
