//! Time is injected: with one manual clock shared by the publishing core and the service, a task's
//! deadline passes when the clock is moved, not when the test waits, and `raise_escalations` then
//! publishes the overdue escalation, once, through the gateway's admission, dated at the deadline.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_admission::{Admission, Limits, Policy};
use hazchem_bus::Bus;
use hazchem_domain::{Department, Uscc};
use hazchem_enforcement::task::{Enterprise, EscalationReason, LegalBasis, OpenTask, Reason};
use hazchem_enforcement::{
    Command, Enforcement, EnforcementConfig, Registers, Request, TaskQuery, escalation_event_id,
};
use hazchem_kit::{Clock as _, EventSink, ManualClock, SharedClock};
use hazchem_pki::{KeyRegistry, Principal};
use hazchem_proto::v1;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

fn open(deadline: DateTime<Utc>) -> Request {
    Request {
        task_id: "t-clock".into(),
        command_id: "cmd-open".into(),
        actor: Department::Emergency,
        command: Command::Open(OpenTask {
            title: "化工园区联合检查".into(),
            participants: vec![Department::Fire],
            targets: vec![Enterprise {
                uscc: Uscc::parse("91320602MA04MJFYQC").unwrap(),
                name: "南通示例化工有限公司".into(),
            }],
            legal_basis: LegalBasis {
                instrument: "《危险化学品安全管理条例》".into(),
                article: "第六条".into(),
                version: "2013-12-07".into(),
            },
            reason: Reason::Text("季度双随机抽查".into()),
            deadline,
        }),
    }
}

/// The events on the bus whose subject has this type token.
async fn events_of(bus: &Bus, token: &str) -> Vec<v1::Event> {
    let mut out = Vec::new();
    for sequence in 1..=bus.last_sequence().await.unwrap() {
        let message = bus.get(sequence).await.unwrap().unwrap();
        if message.subject.split('.').nth(3) != Some(token) {
            continue;
        }
        let record = v1::Record::decode(message.payload.as_ref()).unwrap();
        out.push(v1::Event::decode(record.event.as_slice()).unwrap());
    }
    out
}

#[tokio::test]
async fn a_deadline_passes_when_the_clock_moves_and_escalates_once() {
    let dir = tempfile::tempdir().unwrap();
    let start: DateTime<Utc> = "2026-11-20T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let shared: SharedClock = Arc::new(clock.clone());
    let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
    let admission = Admission::new(
        Policy::default_policy(),
        KeyRegistry::new(),
        Limits::default(),
    );
    let publisher = hazchem_gateway::Publisher::new(
        bus.clone(),
        admission,
        hazchem_gateway::Metrics::unregistered(),
    )
    .with_clock(shared.clone());
    let sink = EventSink::new(publisher, Principal::service("enforcement").unwrap());
    let config = EnforcementConfig {
        store: dir.path().join("store"),
        // The service's own check runs once at start; this test raises escalations itself.
        escalation_interval: Duration::from_secs(24 * 3600),
        ..EnforcementConfig::default()
    };
    let service = Enforcement::open(&config, Registers::default_registers(), bus.clone(), sink)
        .await
        .unwrap()
        .with_clock(shared);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let service = service.clone();
        let shutdown = shutdown.clone();
        async move { service.run(shutdown).await }
    });

    let deadline = start + TimeDelta::days(30);
    let task = service.execute(open(deadline)).await.unwrap();
    assert_eq!(task.deadline, deadline);
    let overdue = TaskQuery {
        overdue_only: true,
        limit: 10,
        ..TaskQuery::default()
    };

    // A day before the deadline (by the clock): nothing is due.
    clock.advance(TimeDelta::days(29));
    assert_eq!(service.raise_escalations().await.unwrap(), 0);
    assert!(service.tasks(&overdue, clock.now()).0.is_empty());
    assert!(events_of(&bus, "task_escalated").await.is_empty());

    // The clock passes the deadline: the task is overdue and its escalation is published once.
    clock.advance(TimeDelta::days(1) + TimeDelta::minutes(1));
    assert_eq!(service.raise_escalations().await.unwrap(), 1);
    let (listed, _) = service.tasks(&overdue, clock.now());
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t-clock"]
    );
    let task = service.task("t-clock").unwrap();
    assert!(task.escalated(EscalationReason::Overdue));
    let escalated = events_of(&bus, "task_escalated").await;
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        escalated[0].id,
        escalation_event_id("t-clock", EscalationReason::Overdue)
    );
    // Dated at the deadline it reports, which the gateway admits by the same clock.
    assert_eq!(
        escalated[0].time,
        Some(hazchem_proto::time::timestamp(deadline))
    );

    // Raised already: more time raises nothing more.
    clock.advance(TimeDelta::days(7));
    assert_eq!(service.raise_escalations().await.unwrap(), 0);
    assert_eq!(events_of(&bus, "task_escalated").await.len(), 1);

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
