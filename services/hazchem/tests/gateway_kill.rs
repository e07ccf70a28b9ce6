//! An acknowledgement means durable, and one event id gives one record: a client publishes a stream
//! of distinct events with retries while the test SIGKILLs the gateway process mid-stream and starts
//! it again on the same data and port. In the end every acknowledged event is in the stream exactly
//! once, at the sequence it was acknowledged with, and nothing is there twice.
//!
//! - embedded: `hazchem dev` (gateway and embedded bus in one process, so the bus dies too);
//! - JetStream: `hazchem serve gateway --config <file>` against a harness `nats-server`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hazchem_bus::{Bus, JetStreamConfig};
use hazchem_pki::{DevPki, Principal};
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_client::PublishServiceClient;
use hazchem_tests::process::{ChildProcess, DevProcess, free_port};
use hazchem_tests::{NatsServer, StoredEvent, fresh, signed, stored_events};
use prost::Message as _;
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Events published.
const EVENTS: usize = 500;
/// Concurrent publishers (so that several requests are in flight at each kill).
const WORKERS: usize = 8;
/// Kill the gateway once this many events are acknowledged.
const KILL_AT: [usize; 3] = [EVENTS / 5, EVENTS / 2, 4 * EVENTS / 5];
/// Longest time to get one event acknowledged, retries included.
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hazchem"))
}

/// What the publishers learned.
#[derive(Default)]
struct Progress {
    /// Claimed by a publisher.
    next: AtomicUsize,
    /// Acknowledged.
    acked: AtomicUsize,
    /// Calls that failed and were retried.
    retries: AtomicUsize,
    acks: Mutex<Vec<v1::Accepted>>,
}

/// The events: a transport waybill each, with ids `kill-0000` ...
fn events() -> Vec<v1::SignedEvent> {
    (0..EVENTS)
        .map(|i| {
            let mut event = fresh("waybill_issued");
            event.id = format!("kill-{i:04}");
            signed(&event, None)
        })
        .collect()
}

fn retryable(code: Code) -> bool {
    // What a dying or restarting server looks like to a client: the connection is refused or
    // reset, or the call is cut off.
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Internal
    )
}

/// Publishes `event` until it is acknowledged, reconnecting after failures.
async fn publish_with_retries(
    endpoint: &Endpoint,
    client: &mut Option<PublishServiceClient<Channel>>,
    event: &v1::SignedEvent,
    progress: &Progress,
) -> v1::Accepted {
    let deadline = Instant::now() + EVENT_DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "event not acknowledged within {EVENT_DEADLINE:?}"
        );
        if client.is_none() {
            match endpoint.connect().await {
                Ok(channel) => *client = Some(PublishServiceClient::new(channel)),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let request = v1::PublishRequest {
            event: Some(event.clone()),
        };
        match client.as_mut().expect("connected").publish(request).await {
            Ok(response) => return response.into_inner().accepted.expect("accepted"),
            Err(status) if retryable(status.code()) => {
                progress.retries.fetch_add(1, Ordering::Relaxed);
                *client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the event was refused: {status:?}"),
        }
    }
}

/// Starts the publishers on `runtime`; they run until every event is acknowledged.
fn start_publishers(
    runtime: &tokio::runtime::Runtime,
    endpoint: Endpoint,
    events: Arc<Vec<v1::SignedEvent>>,
    progress: Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|_| {
            let (endpoint, events, progress) = (endpoint.clone(), events.clone(), progress.clone());
            runtime.spawn(async move {
                let mut client = None;
                loop {
                    let i = progress.next.fetch_add(1, Ordering::SeqCst);
                    if i >= events.len() {
                        return;
                    }
                    let accepted =
                        publish_with_retries(&endpoint, &mut client, &events[i], &progress).await;
                    progress.acks.lock().unwrap().push(accepted);
                    progress.acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect()
}

/// Waits until `n` events are acknowledged.
fn wait_for_acks(progress: &Progress, n: usize) {
    let deadline = Instant::now() + EVENT_DEADLINE;
    while progress.acked.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events acknowledged within {EVENT_DEADLINE:?}",
            progress.acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn endpoint(port: u16, tls: ClientTlsConfig) -> Endpoint {
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("a URL")
        .tls_config(tls)
        .expect("TLS")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
}

/// Every acknowledged event is stored exactly once, where it was acknowledged.
fn check(stored: &[StoredEvent], progress: &Progress, events: &[v1::SignedEvent]) {
    let acks = progress.acks.lock().unwrap();
    assert_eq!(acks.len(), EVENTS, "every event was acknowledged");
    let mut by_id: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for s in stored {
        by_id
            .entry(s.event.id.as_str())
            .or_default()
            .push(s.sequence);
    }
    let twice: Vec<_> = by_id.iter().filter(|(_, seqs)| seqs.len() > 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
    for ack in acks.iter() {
        assert_eq!(
            by_id.get(ack.event_id.as_str()),
            Some(&vec![ack.sequence]),
            "{} acknowledged at {} (duplicate: {})",
            ack.event_id,
            ack.sequence,
            ack.duplicate
        );
    }
    let acked: BTreeSet<&str> = acks.iter().map(|a| a.event_id.as_str()).collect();
    assert_eq!(acked.len(), EVENTS, "one acknowledgement per event");
    // The services `hazchem dev` runs derive events of their own from the stream (the warning service
    // raises a warning for each waybill of a carrier without a road transport licence); what a
    // department published is exactly the events.
    let (published, derived): (Vec<&StoredEvent>, Vec<&StoredEvent>) =
        stored.iter().partition(|s| {
            matches!(
                s.record
                    .publisher
                    .as_ref()
                    .and_then(|p| p.principal.as_ref()),
                Some(v1::publisher::Principal::Department(_))
            )
        });
    for s in &derived {
        let Some(v1::publisher::Principal::Service(name)) = s
            .record
            .publisher
            .as_ref()
            .and_then(|p| p.principal.as_ref())
        else {
            panic!(
                "{} is stored with no department or service as its publisher",
                s.subject
            );
        };
        assert!(
            s.subject.starts_with(&format!("hazchem.ev.{name}.")),
            "{} published by service {name}",
            s.subject
        );
    }
    assert_eq!(published.len(), EVENTS, "nothing but the events is stored");
    // The stored bytes are the ones sent.
    for s in published {
        let i: usize = s.event.id["kill-".len()..].parse().unwrap();
        assert_eq!(
            s.record.event, events[i].event,
            "{}: the exact bytes",
            s.event.id
        );
        assert_eq!(
            v1::Event::decode(s.record.event.as_slice()).unwrap().id,
            s.event.id
        );
    }
    let duplicates = acks.iter().filter(|a| a.duplicate).count();
    eprintln!(
        "{EVENTS} events acknowledged, {} retried calls, {duplicates} acknowledged as duplicates \
         (stored before a kill, acknowledged after it)",
        progress.retries.load(Ordering::Relaxed)
    );
}

#[test]
fn hazchem_dev_keeps_every_acknowledged_event_exactly_once_across_kills() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().join("dev");
    let port = free_port();
    let mut dev = DevProcess::start(exe(), &data_dir, port, None);
    let pki = DevPki::load(&data_dir.join("pki")).expect("the development PKI");
    let tls = pki
        .client_tls(&Principal::Department("transport".parse().unwrap()))
        .unwrap()
        .config();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events = Arc::new(events());
    let progress = Arc::new(Progress::default());
    let workers = start_publishers(
        &runtime,
        endpoint(port, tls),
        events.clone(),
        progress.clone(),
    );

    for at in KILL_AT {
        wait_for_acks(&progress, at);
        dev.process.kill();
        let acked = progress.acked.load(Ordering::SeqCst);
        assert!(acked < EVENTS, "killed mid-stream ({acked} acknowledged)");
        dev.restart();
    }
    runtime.block_on(async {
        for worker in workers {
            worker.await.expect("a publisher panicked");
        }
    });
    let status = dev.process.terminate();
    assert!(status.success(), "{status}\n{}", dev.process.log());

    // Read the record the way the next `hazchem dev` would.
    let stored = runtime.block_on(async {
        let bus = Bus::embedded(&data_dir.join("bus"))
            .await
            .expect("open the bus");
        stored_events(&bus).await
    });
    check(&stored, &progress, &events);
}

#[test]
fn hazchem_serve_gateway_on_jetstream_keeps_every_acknowledged_event_exactly_once_across_kills() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = DevPki::generate(&dir.path().join("pki")).expect("a development PKI");
    let port = free_port();
    let config = dir.path().join("hazchem.toml");
    std::fs::write(
        &config,
        format!(
            r#"metrics_listen = "127.0.0.1:0"

[bus]
kind = "jetstream"
url = "{url}"

[gateway]
listen = "127.0.0.1:{port}"
signing_keys = {keys:?}

[gateway.tls]
cert = {cert:?}
key = {key:?}
client_ca = {ca:?}
"#,
            url = nats.url(),
            keys = pki.key_registry_path(),
            cert = pki.server_cert_path(),
            key = pki.server_key_path(),
            ca = pki.ca_cert_path(),
        ),
    )
    .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut gateway = ChildProcess::spawn(
        exe(),
        [
            OsStr::new("serve"),
            OsStr::new("gateway"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        None,
        dir.path().join("gateway.log"),
    );
    gateway.wait_for_port(addr);
    let tls = pki
        .client_tls(&Principal::Department("transport".parse().unwrap()))
        .unwrap()
        .config();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events = Arc::new(events());
    let progress = Arc::new(Progress::default());
    let workers = start_publishers(
        &runtime,
        endpoint(port, tls),
        events.clone(),
        progress.clone(),
    );

    for at in KILL_AT {
        wait_for_acks(&progress, at);
        gateway.kill();
        let acked = progress.acked.load(Ordering::SeqCst);
        assert!(acked < EVENTS, "killed mid-stream ({acked} acknowledged)");
        gateway.restart();
        gateway.wait_for_port(addr);
    }
    runtime.block_on(async {
        for worker in workers {
            worker.await.expect("a publisher panicked");
        }
    });
    let status = gateway.terminate();
    assert!(status.success(), "{status}\n{}", gateway.log());

    let stored = runtime.block_on(async {
        let bus = Bus::jetstream(&JetStreamConfig::new(nats.url()))
            .await
            .expect("connect to JetStream");
        stored_events(&bus).await
    });
    check(&stored, &progress, &events);
}
