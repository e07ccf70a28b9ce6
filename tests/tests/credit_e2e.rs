//! The credit constraint end to end, on the embedded bus (gateway and credit service in one process, the
//! in-process guard) and on a real nats-server (the distributed mode: the gateway asks the credit
//! service over `ReviewDecision`): departments publish penalties, listings, repairs and grants through the
//! gateway's `Publish`; the credit service answers `Check`, `GetHistory` and `ListListings` over gRPC;
//! bad decisions are refused with precise statuses and append nothing; a licence issued to a listed
//! enterprise raises a credit-conflict warning on the stream, and one to an unlisted or expired one does
//! not; a rebuild from the stream answers every query the same.

#![allow(clippy::disallowed_methods)] // tests: events are stamped with wall time for gateways on the system clock

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_bus::Bus;
use hazchem_credit::fixtures::{self, uscc};
use hazchem_credit::registry::{add_months, conflict_warning_id, expiry_event_id};
use hazchem_credit::{Credit, CreditConfig, CreditGuard, CreditServer, RemoteCreditGuard};
use hazchem_domain::{Department, Uscc};
use hazchem_gateway::{GatewayConfig, Metrics, Publisher};
use hazchem_kit::{EventGuard, EventSink};
use hazchem_pki::Principal;
use hazchem_proto::v1;
use hazchem_proto::v1::credit_service_client::CreditServiceClient;
use hazchem_tests::{
    BusKind, TestBus, TestGateway, TestPki, assert_serving, dept, error_info, service,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

/// A credit service (core, runner and gRPC server) in this process.
struct CreditProcess {
    credit: Credit,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl CreditProcess {
    /// Opens the credit service on `state`, follows `bus`, publishes through `sink`, serves gRPC.
    async fn start(
        state: &std::path::Path,
        pki: &TestPki,
        bus: Bus,
        sink: EventSink,
    ) -> CreditProcess {
        let config = CreditConfig {
            state: state.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..CreditConfig::default()
        };
        let credit = Credit::open(&config, hazchem_admission::Policy::default_policy()).unwrap();
        let shutdown = CancellationToken::new();
        let files = pki.server_tls_files();
        let tls = files.load().unwrap();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = CreditServer::new(credit.clone());
        let serve = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { server.serve(listener, &tls, shutdown).await.unwrap() })
        };
        let run = {
            let credit = credit.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { credit.run(bus, sink, shutdown).await.unwrap() })
        };
        CreditProcess {
            credit,
            addr,
            shutdown,
            tasks: vec![serve, run],
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// The gateway and the credit service, wired for one of the two modes.
struct World {
    gateway: TestGateway,
    credit: Option<CreditProcess>,
    state: tempfile::TempDir,
}

impl World {
    /// Embedded: one process, the in-process guard. JetStream: the gateway reviews over gRPC.
    async fn start(kind: BusKind) -> World {
        let bus = TestBus::new(kind).await;
        let pki = TestPki::generate();
        let state = tempfile::tempdir().unwrap();
        // The credit "process" publishes through its own publishing core, as in the distributed mode.
        let own = Publisher::from_config(
            &GatewayConfig::default(),
            bus.bus().clone(),
            Metrics::unregistered(),
        )
        .unwrap();
        let sink = EventSink::new(own, service("credit"));
        let credit =
            CreditProcess::start(&state.path().join("credit"), &pki, bus.bus().clone(), sink).await;
        let guard: Arc<dyn EventGuard> = match kind {
            BusKind::Embedded => Arc::new(CreditGuard::new(credit.credit.clone())),
            BusKind::JetStream => {
                let channel = pki.channel(credit.addr, &service("gateway")).await;
                Arc::new(RemoteCreditGuard::with_channel(
                    channel,
                    Duration::from_secs(10),
                ))
            }
        };
        let gateway = TestGateway::builder(bus)
            .pki(pki)
            .guard(guard)
            .start()
            .await;
        World {
            gateway,
            credit: Some(credit),
            state,
        }
    }

    fn credit(&self) -> &CreditProcess {
        self.credit.as_ref().unwrap()
    }

    async fn client(&self, principal: &Principal) -> CreditServiceClient<Channel> {
        CreditServiceClient::new(
            self.gateway
                .pki()
                .channel(self.credit().addr, principal)
                .await,
        )
    }

    async fn publish(&self, event: &v1::Event) -> Result<v1::Accepted, tonic::Status> {
        self.gateway.publish_event(event).await
    }

    async fn settle(&self) {
        let last = self.gateway.bus().last_sequence().await;
        assert!(
            self.credit()
                .credit
                .wait_for(last, Duration::from_secs(15))
                .await
        );
    }

    /// Events of the stream with this type.
    async fn events_of(&self, token: &str) -> Vec<v1::Event> {
        self.gateway
            .bus()
            .records()
            .await
            .into_iter()
            .filter(|r| r.subject.split('.').nth(3) == Some(token))
            .map(|r| r.event)
            .collect()
    }

    /// Waits for the credit service's event `id` (event ids are scoped by publisher: another
    /// publisher's event with the same id is not it).
    async fn wait_for_event(&self, id: &str) {
        for _ in 0..300 {
            if self
                .gateway
                .bus()
                .records()
                .await
                .iter()
                .any(|r| r.event.id == id && r.subject.split('.').nth(2) == Some("credit"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the credit service's event {id} never appeared");
    }
}

fn check_request(e: &Uscc, d: Department, at: Option<DateTime<Utc>>) -> v1::CheckRequest {
    v1::CheckRequest {
        uscc: e.as_str().to_owned(),
        department: v1::Department::from(d) as i32,
        at: at.map(fixtures_ts),
    }
}

fn fixtures_ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    hazchem_proto::time::timestamp(t)
}

fn active_ids(r: &v1::CheckResponse) -> Vec<String> {
    r.active.iter().map(|l| l.listing_id.clone()).collect()
}

fn codes(r: &v1::CheckResponse) -> Vec<String> {
    r.measures.iter().map(|m| m.code.clone()).collect()
}

fn reason(s: &tonic::Status) -> String {
    error_info(s).map(|i| i.reason).unwrap_or_default()
}

/// Every gRPC answer about `enterprises` at `instants`, for comparing before and after a rebuild.
async fn answers(w: &World, enterprises: &[Uscc], instants: &[DateTime<Utc>]) -> Vec<String> {
    let mut client = w.client(&dept("fire")).await;
    let mut out = Vec::new();
    for at in instants {
        for e in enterprises {
            for d in [Department::Emergency, Department::Fire] {
                let r = client
                    .check(check_request(e, d, Some(*at)))
                    .await
                    .unwrap()
                    .into_inner();
                out.push(format!("{r:?}"));
            }
            let r = client
                .get_history(v1::GetHistoryRequest {
                    uscc: e.as_str().to_owned(),
                    as_of: Some(fixtures_ts(*at)),
                })
                .await
                .unwrap()
                .into_inner();
            out.push(format!("{r:?}"));
        }
        let r = client
            .list_listings(v1::ListListingsRequest {
                as_of: Some(fixtures_ts(*at)),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.push(format!("{r:?}"));
    }
    out
}

async fn scenario(kind: BusKind) {
    let mut w = World::start(kind).await;
    let emergency = Department::Emergency;
    let now = Utc::now();
    let (e1, e2, e3) = (uscc(101), uscc(102), uscc(103));

    // A hostile department squats the ids the credit service will use for the conflict warning and the
    // expiry announcement, before anything is listed or granted: its events are its own, and change nothing the
    // credit service publishes.
    for squatted in [conflict_warning_id("e2e-g1"), expiry_event_id("CL-E2E-2")] {
        let mut waybill = hazchem_tests::fresh("waybill_issued");
        waybill.id = squatted.clone();
        let accepted = w.publish(&waybill).await.unwrap();
        assert!(!accepted.duplicate, "{squatted}: {accepted:?}");
    }

    // E1: penalised and listed 13 months ago by emergency management.
    let listed = now - TimeDelta::days(400);
    w.publish(&fixtures::penalty(
        "e2e-p1", emergency, "P-E2E-1", &e1, listed,
    ))
    .await
    .unwrap();
    let l1 = fixtures::listing(
        "e2e-l1",
        emergency,
        "CL-E2E-1",
        &e1,
        v1::ListType::SeriousDishonest,
        "P-E2E-1",
        fixtures::usual_measures(),
        listed,
    );
    let accepted = w.publish(&l1).await.unwrap();
    // E2: listed three years and two days ago: expired.
    let old = now - TimeDelta::days(3 * 365 + 2);
    w.publish(&fixtures::penalty("e2e-p2", emergency, "P-E2E-2", &e2, old))
        .await
        .unwrap();
    w.publish(&fixtures::listing(
        "e2e-l2",
        emergency,
        "CL-E2E-2",
        &e2,
        v1::ListType::SeriousDishonest,
        "P-E2E-2",
        fixtures::usual_measures(),
        old,
    ))
    .await
    .unwrap();
    w.settle().await;

    // Check over gRPC, as the fire department.
    let mut fire = w.client(&dept("fire")).await;
    let r = fire
        .check(check_request(&e1, emergency, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active_ids(&r), ["CL-E2E-1"]);
    assert_eq!(
        codes(&r),
        [
            "stricter_inspection",
            "licence_restriction",
            "procurement_ban"
        ]
    );
    assert_eq!(r.active[0].status, v1::ListingStatus::Active as i32);
    let r = fire
        .check(check_request(&e1, Department::Fire, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r), ["stricter_inspection", "procurement_ban"]);
    // As of just before the listing was recorded: nothing.
    let recorded = w
        .gateway
        .bus()
        .records()
        .await
        .into_iter()
        .find(|r| r.sequence == accepted.sequence)
        .unwrap()
        .record
        .accepted_at
        .unwrap();
    let recorded = DateTime::from_timestamp(recorded.seconds, recorded.nanos as u32).unwrap();
    let r = fire
        .check(check_request(
            &e1,
            emergency,
            Some(recorded - TimeDelta::nanoseconds(1)),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.active.is_empty());
    let r = fire
        .check(check_request(&e2, emergency, None))
        .await
        .unwrap()
        .into_inner();
    assert!(r.active.is_empty(), "E2's listing expired");

    // Bad decisions: refused precisely, nothing appended (once the credit service has announced E2's
    // expiry, which it does on its own time).
    w.wait_for_event(&expiry_event_id("CL-E2E-2")).await;
    let before = w.gateway.bus().last_sequence().await;
    let s = w
        .publish(&fixtures::repair(
            "e2e-r404", emergency, "CL-NOPE", &e1, now,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::NotFound, "LISTING_NOT_FOUND"),
        "{s:?}"
    );
    let s = w
        .publish(&fixtures::listing(
            "e2e-lt",
            Department::Transport,
            "CL-E2E-T",
            &e1,
            v1::ListType::JointPunishment,
            "P-E2E-1",
            fixtures::usual_measures(),
            listed,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::PermissionDenied, "NOT_SANCTIONING_DEPARTMENT"),
        "{s:?}"
    );
    let mut measures = fixtures::usual_measures();
    measures.push(fixtures::measure("public_flogging", &[]));
    let s = w
        .publish(&fixtures::listing(
            "e2e-lm",
            emergency,
            "CL-E2E-M",
            &e1,
            v1::ListType::SeriousDishonest,
            "P-E2E-1",
            measures,
            listed,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::InvalidArgument, "UNKNOWN_MEASURE")
    );
    assert_eq!(
        hazchem_tests::violations(&s),
        [(
            "credit_listing_decided.measures[3].code".to_owned(),
            "measure.unknown".to_owned()
        )]
    );
    let repaired_at = add_months(listed, 12);
    let s = w
        .publish(&fixtures::repair(
            "e2e-early",
            emergency,
            "CL-E2E-1",
            &e1,
            repaired_at - TimeDelta::seconds(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::FailedPrecondition, "REPAIR_TOO_EARLY")
    );
    assert_eq!(w.gateway.bus().last_sequence().await, before);

    // Grants: to the listed E1 (a conflict), to the expired E2 and the unlisted E3 (none).
    let kind_ = v1::LicenceKind::SafetyProduction;
    let grant_time = Utc::now() - TimeDelta::seconds(5);
    for (id, holder) in [("e2e-g1", &e1), ("e2e-g2", &e2), ("e2e-g3", &e3)] {
        w.publish(&fixtures::licence_issued(
            id, emergency, kind_, holder, grant_time,
        ))
        .await
        .unwrap();
    }
    w.settle().await;
    w.wait_for_event(&conflict_warning_id("e2e-g1")).await;
    w.wait_for_event(&expiry_event_id("CL-E2E-2")).await;
    let warnings = w.events_of("warning_raised").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let Some(v1::event::Payload::WarningRaised(warning)) = &warnings[0].payload else {
        unreachable!()
    };
    assert_eq!(warning.rule_id, "credit.conflict");
    assert_eq!(warning.level, v1::WarningLevel::Red as i32);
    assert_eq!(warning.related_event_ids, ["e2e-g1", "e2e-l1"]);
    assert_eq!(warning.addressed_to, [v1::Department::Emergency as i32]);
    assert_eq!(warning.enterprise.as_ref().unwrap().uscc, e1.as_str());

    // Repair from twelve months on; then the repair is found fraudulent and revoked.
    w.publish(&fixtures::repair(
        "e2e-r1",
        emergency,
        "CL-E2E-1",
        &e1,
        repaired_at,
    ))
    .await
    .unwrap();
    w.settle().await;
    let r = fire
        .check(check_request(&e1, emergency, None))
        .await
        .unwrap()
        .into_inner();
    assert!(r.active.is_empty(), "repaired");
    let revoked_at = Utc::now();
    w.publish(&fixtures::revocation(
        "e2e-v1", emergency, "CL-E2E-1", &e1, revoked_at,
    ))
    .await
    .unwrap();
    w.settle().await;
    let r = fire
        .check(check_request(&e1, emergency, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active_ids(&r), ["CL-E2E-1"], "restored");
    let history = fire
        .get_history(v1::GetHistoryRequest {
            uscc: e1.as_str().to_owned(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<i32> = history.listings[0]
        .history
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses,
        [
            v1::ListingStatus::Active as i32,
            v1::ListingStatus::Repaired as i32,
            v1::ListingStatus::Active as i32
        ]
    );
    // Listings by department and status.
    let page = fire
        .list_listings(v1::ListListingsRequest {
            department: v1::Department::Emergency as i32,
            status: v1::ListingStatus::Expired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.listings.len(), 1);
    assert_eq!(page.listings[0].listing_id, "CL-E2E-2");

    // Who may ask: reviews are for the gateway only; queries need a certificate.
    let s = w
        .client(&dept("emergency"))
        .await
        .review_decision(v1::ReviewDecisionRequest {
            event: vec![],
            department: v1::Department::Emergency as i32,
            up_to: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::PermissionDenied, "NOT_A_REVIEWER")
    );
    let anonymous = w.gateway.pki().anonymous_channel(w.credit().addr).await;
    let s = CreditServiceClient::new(anonymous)
        .check(check_request(&e1, emergency, None))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_serving(
        w.gateway
            .pki()
            .channel(w.credit().addr, &dept("fire"))
            .await,
        &["hazchem.v1.CreditService"],
    )
    .await;

    // Rebuild the credit service from the stream: the same answers, no second warning.
    let enterprises = [e1.clone(), e2.clone(), e3.clone()];
    let instants: Vec<DateTime<Utc>> = [
        recorded - TimeDelta::nanoseconds(1),
        recorded,
        repaired_at - TimeDelta::nanoseconds(1),
        revoked_at - TimeDelta::nanoseconds(1),
        Utc::now(),
    ]
    .into();
    let before = answers(&w, &enterprises, &instants).await;
    w.credit.take().unwrap().stop().await;
    std::fs::remove_dir_all(w.state.path().join("credit")).unwrap();
    let own = Publisher::from_config(
        &GatewayConfig::default(),
        w.gateway.bus().bus().clone(),
        Metrics::unregistered(),
    )
    .unwrap();
    let credit = CreditProcess::start(
        &w.state.path().join("credit"),
        w.gateway.pki(),
        w.gateway.bus().bus().clone(),
        EventSink::new(own, service("credit")),
    )
    .await;
    w.credit = Some(credit);
    w.settle().await;
    assert_eq!(answers(&w, &enterprises, &instants).await, before);
    assert_eq!(w.events_of("warning_raised").await.len(), 1);
    assert_eq!(w.events_of("credit_listing_expired").await.len(), 1);
    w.credit.take().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_end_to_end_on_the_embedded_bus_with_the_in_process_guard() {
    scenario(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_end_to_end_on_jetstream_with_the_remote_guard() {
    scenario(BusKind::JetStream).await;
}
