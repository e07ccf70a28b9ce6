//! A warning service on an embedded bus, with the gateway's real publishing core and the development
//! PKI (department events are published, and signed, as the departments), all in this process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hazchem_bus::Bus;
use hazchem_domain::{Department, Uscc};
use hazchem_gateway::{GatewayConfig, Metrics, Publisher};
use hazchem_kit::{Accepted, Clock as _, EventSink, ManualClock, SharedClock};
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_warning::{WarningConfig, Warnings};
use prost::Message as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn pki() -> DevPki {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("warning-crate-pki");
    DevPki::generate(&dir).expect("development PKI")
}

pub fn uscc(n: u64) -> String {
    Uscc::with_check(&format!("9132060{:010}", n % 10_000_000_000))
        .unwrap()
        .as_str()
        .to_owned()
}

/// A highly toxic chemical of the sample catalogue (hydrogen cyanide) and an ordinary one (ammonia).
pub const HCN: &str = "74-90-8";
pub const AMMONIA: &str = "7664-41-7";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub bus: Bus,
    pub publisher: Publisher,
    pub clock: ManualClock,
    pub config: WarningConfig,
    pub running: Option<(
        Warnings,
        CancellationToken,
        JoinHandle<hazchem_warning::Result<()>>,
    )>,
    n: u64,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki();
        #[allow(clippy::disallowed_methods)] // the test's clock starts at the wall time
        let clock = ManualClock::new(Utc::now());
        let shared: SharedClock = Arc::new(clock.clone());
        let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
        let gateway = GatewayConfig {
            signing_keys: Some(pki.key_registry_path()),
            ..GatewayConfig::default()
        };
        let publisher = Publisher::from_config(&gateway, bus.clone(), Metrics::unregistered())
            .unwrap()
            .with_clock(shared);
        let config = WarningConfig {
            store: dir.path().join("warning"),
            // The test raises escalations itself.
            escalation_interval: Duration::from_secs(24 * 3600),
            ..WarningConfig::default()
        };
        Harness {
            dir,
            pki,
            bus,
            publisher,
            clock,
            config,
            running: None,
            n: 0,
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.config.store.clone()
    }

    pub fn sink(&self, service: &str) -> EventSink {
        EventSink::new(self.publisher.clone(), Principal::service(service).unwrap())
    }

    pub async fn start(&mut self) -> Warnings {
        let shared: SharedClock = Arc::new(self.clock.clone());
        let service = Warnings::from_config(
            &self.config,
            hazchem_admission::Policy::default_policy(),
            self.bus.clone(),
            self.sink("warning"),
        )
        .unwrap()
        .with_clock(shared);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let service = service.clone();
            let shutdown = shutdown.clone();
            async move { service.run(shutdown).await }
        });
        self.running = Some((service.clone(), shutdown, task));
        service
    }

    pub async fn stop(&mut self) {
        if let Some((_, shutdown, task)) = self.running.take() {
            shutdown.cancel();
            task.await.unwrap().unwrap();
        }
    }

    pub fn service(&self) -> &Warnings {
        &self.running.as_ref().unwrap().0
    }

    /// Waits until the service has applied everything on the stream, including what its own derived
    /// events added (repeats until the stream stops growing).
    pub async fn settle(&self) {
        loop {
            let last = self.bus.last_sequence().await.unwrap();
            self.service().caught_up().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.bus.last_sequence().await.unwrap() == last {
                self.service().caught_up().await.unwrap();
                return;
            }
        }
    }

    /// An event from the fixture of `token`, with a fresh id, the clock's time, and `change` applied.
    pub fn event(&mut self, token: &str, change: impl FnOnce(&mut v1::Event)) -> v1::Event {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events")
            .join(format!("{token}.json"));
        let json = std::fs::read_to_string(path).unwrap();
        let mut event: v1::Event = hazchem_proto::from_json(&json).unwrap();
        self.n += 1;
        event.id = format!("t-{token}-{}", self.n);
        event.time = Some(hazchem_proto::time::timestamp(self.clock.now()));
        change(&mut event);
        event
    }

    /// Publishes as the event's department, signed with its development key.
    pub async fn publish(&self, event: &v1::Event) -> Accepted {
        let department = hazchem_proto::department_from_i32(event.department).unwrap();
        let key = self.pki.signing_key(department).unwrap();
        let bytes = event.encode_to_vec();
        let signed = v1::SignedEvent {
            signature: Some(v1::OriginSignature {
                key_id: key.origin_key_id(department),
                signature: key.sign(&bytes).to_vec(),
            }),
            event: bytes,
        };
        self.publisher
            .publish(&Principal::Department(department), &signed)
            .await
            .unwrap_or_else(|s| panic!("publishing {}: {s:?}", event.id))
    }

    /// Every event on the bus of type `token`, with its publisher token.
    pub async fn events(&self, token: &str) -> Vec<(String, v1::Event)> {
        let mut out = Vec::new();
        for sequence in 1..=self.bus.last_sequence().await.unwrap() {
            let message = self.bus.get(sequence).await.unwrap().unwrap();
            if message.subject.split('.').nth(3) != Some(token) {
                continue;
            }
            let record = v1::Record::decode(message.payload.as_ref()).unwrap();
            out.push((
                message.publisher().to_owned(),
                v1::Event::decode(record.event.as_slice()).unwrap(),
            ));
        }
        out
    }

    /// The `warning_raised` payloads of rule `rule`.
    pub async fn raised(&self, rule: &str) -> Vec<v1::WarningRaised> {
        self.events("warning_raised")
            .await
            .into_iter()
            .filter_map(|(_, e)| match e.payload {
                Some(v1::event::Payload::WarningRaised(r)) if r.rule_id == rule => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The `warning_closed` payloads for `warning_id`.
    pub async fn closed(&self, warning_id: &str) -> Vec<v1::WarningClosed> {
        self.events("warning_closed")
            .await
            .into_iter()
            .filter_map(|(_, e)| match e.payload {
                Some(v1::event::Payload::WarningClosed(c)) if c.warning_id == warning_id => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

pub fn enterprise(uscc: &str, name: &str) -> Option<v1::EnterpriseRef> {
    Some(v1::EnterpriseRef {
        uscc: uscc.to_owned(),
        name: name.to_owned(),
    })
}

pub fn ts(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(hazchem_proto::time::timestamp(t))
}

pub fn dept(d: Department) -> i32 {
    v1::Department::from(d) as i32
}
