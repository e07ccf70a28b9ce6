//! A credit service on an embedded bus, with the gateway's publishing core and the development PKI, all in
//! this process: what the crate's integration tests need.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hazchem_bus::Bus;
use hazchem_credit::{Credit, CreditConfig, CreditGuard, fixtures};
use hazchem_domain::Department;
use hazchem_gateway::{GatewayConfig, Metrics, Publisher};
use hazchem_kit::{Accepted, EventSink, SharedClock, SystemClock};
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use prost::Message as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// The development PKI, generated once per test binary (generation is idempotent).
pub fn pki() -> DevPki {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("credit-crate-pki");
    DevPki::generate(&dir).expect("development PKI")
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub bus: Bus,
    /// The publishing core without the credit guard (services publish through it).
    pub base: Publisher,
    pub config: CreditConfig,
    /// The clock the publishing core and the credit service share.
    pub clock: SharedClock,
    pub running: Option<Running>,
}

pub struct Running {
    pub credit: Credit,
    /// The publishing core departments use: with the credit guard.
    pub publisher: Publisher,
    shutdown: CancellationToken,
    task: JoinHandle<hazchem_credit::Result<()>>,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_clock(SystemClock::shared()).await
    }

    /// A harness whose publishing core and credit service take the time from `clock`.
    pub async fn with_clock(clock: SharedClock) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki();
        let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
        let gateway = GatewayConfig {
            signing_keys: Some(pki.key_registry_path()),
            ..GatewayConfig::default()
        };
        let base = Publisher::from_config(&gateway, bus.clone(), Metrics::unregistered())
            .unwrap()
            .with_clock(clock.clone());
        let config = CreditConfig {
            state: dir.path().join("credit"),
            ..CreditConfig::default()
        };
        Harness {
            dir,
            pki,
            bus,
            base,
            config,
            clock,
            running: None,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.config.state.clone()
    }

    /// Opens the credit service on its state and follows the stream.
    pub async fn start_credit(&mut self) -> Credit {
        assert!(self.running.is_none());
        let credit = Credit::open(&self.config, hazchem_admission::Policy::default_policy())
            .unwrap()
            .with_clock(self.clock.clone());
        let publisher = self
            .base
            .clone()
            .with_guard(Arc::new(CreditGuard::new(credit.clone())));
        let sink = EventSink::new(self.base.clone(), Principal::service("credit").unwrap());
        let shutdown = CancellationToken::new();
        let task = {
            let credit = credit.clone();
            let bus = self.bus.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { credit.run(bus, sink, shutdown).await })
        };
        self.running = Some(Running {
            credit: credit.clone(),
            publisher,
            shutdown,
            task,
        });
        credit
    }

    /// Stops the credit service and lets go of its store.
    pub async fn stop_credit(&mut self) {
        let running = self.running.take().expect("running");
        running.shutdown.cancel();
        running.task.await.unwrap().unwrap();
    }

    pub fn credit(&self) -> &Credit {
        &self.running.as_ref().expect("running").credit
    }

    /// Publishes as `department`, signed with its development key, through the guarded core.
    pub async fn publish(
        &self,
        department: Department,
        event: &v1::Event,
    ) -> Result<Accepted, Status> {
        let key = self.pki.signing_key(department).unwrap();
        let signed = fixtures::signed(event, Some((&key, department)));
        self.running
            .as_ref()
            .expect("running")
            .publisher
            .publish(&Principal::Department(department), &signed)
            .await
    }

    /// Waits until the credit service has applied everything on the stream.
    pub async fn settle(&self) {
        let last = self.bus.last_sequence().await.unwrap();
        assert!(
            self.credit().wait_for(last, Duration::from_secs(10)).await,
            "the credit registry did not reach sequence {last}"
        );
    }

    /// Every event on the stream with the token of its subject.
    pub async fn events(&self) -> Vec<(String, v1::Event)> {
        let last = self.bus.last_sequence().await.unwrap();
        let mut out = Vec::new();
        for sequence in 1..=last {
            let message = self.bus.get(sequence).await.unwrap().unwrap();
            let subject = hazchem_bus::EventSubject::parse(&message.subject).unwrap();
            let record = v1::Record::decode(message.payload.as_ref()).unwrap();
            let event = v1::Event::decode(record.event.as_slice()).unwrap();
            out.push((subject.type_token.to_owned(), event));
        }
        out
    }

    /// Waits until an event with this id is on the stream.
    pub async fn wait_for_event(&self, id: &str) -> v1::Event {
        for _ in 0..200 {
            if let Some((_, e)) = self.events().await.into_iter().find(|(_, e)| e.id == id) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("event {id} never appeared on the stream");
    }
}
