//! NATS enforces the policy as well: the configuration `hazchem deploy nats` generates from the
//! publish and read policy gives each department, service and the admin an nkey user whose
//! permissions mirror the policy, and the bus publishes and reads as each principal over that
//! principal's own connection. Each server test starts a real `nats-server` with the generated
//! `nats-dev.conf`, `auth.conf` and a fresh set of keys.
//!
//! The drift test (`committed_configuration_is_what_the_policy_generates`) fails when
//! `deploy/nats/` no longer matches `deploy/policy.toml`: run `hazchem deploy nats`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt;
use hazchem_admission::{DEFAULT_POLICY, Policy};
use hazchem_bus::permissions::{ADMIN_USER, inbox_prefix};
use hazchem_bus::{Bus, Error, Filter, JetStreamConfig, Message, MessageStream, Outgoing, Start};
use hazchem_deploy::{NatsLayout, Role, ensure_keys, generate, seed_path, users};
use hazchem_tests::{NatsServer, unique_id, workspace_root};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Longest wait for something that should happen.
const ARRIVE: Duration = Duration::from_secs(10);
/// A refusal must come from the server's permission violation, well before any request timeout.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);

/// The default policy with the fire department's reading narrowed to two event types.
fn restricted_policy() -> String {
    let narrowed = DEFAULT_POLICY.replacen(
        "fire = [\"*\"]",
        "fire = [\"incident_reported\", \"sensor_alarm_raised\"]",
        1,
    );
    assert_ne!(
        narrowed, DEFAULT_POLICY,
        "the default policy lets fire read `*`"
    );
    narrowed
}

/// A `nats-server` started with the generated configuration, and the users' seeds.
struct Deployment {
    policy_toml: String,
    users: Vec<hazchem_deploy::User>,
    secrets: TempDir,
    server: NatsServer,
}

impl Deployment {
    fn start(policy_toml: &str) -> Deployment {
        hazchem_tests::init_tracing();
        let policy = Policy::from_toml_str(policy_toml).expect("a valid policy");
        let layout = NatsLayout::default();
        let files = generate(&policy, &layout);
        let users = users(&policy, &layout.names);
        let secrets = tempfile::tempdir().expect("secrets dir");
        let nkeys = ensure_keys(&users, &secrets.path().join("seeds")).expect("generate keys");
        let file = |name: &str| {
            files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, text)| text.as_str())
                .expect("generated file")
        };
        let server = NatsServer::start_with_config(
            "nats-dev.conf",
            &[
                ("nats-dev.conf", file("nats-dev.conf")),
                ("auth.conf", file("auth.conf")),
                ("nkeys.conf", &nkeys),
            ],
        );
        Deployment {
            policy_toml: policy_toml.to_owned(),
            users,
            secrets,
            server,
        }
    }

    fn seed(&self, user: &str) -> PathBuf {
        seed_path(&self.secrets.path().join("seeds"), user)
    }

    /// What the gateway runs with: the admin's shared connection, every other user's seed as
    /// per-principal credentials.
    fn gateway_config(&self) -> JetStreamConfig {
        let mut config = JetStreamConfig::new(self.server.url());
        config.nkey_seed_file = Some(self.seed(ADMIN_USER));
        config.inbox_prefix = Some(inbox_prefix(ADMIN_USER));
        config.principal_credentials = self
            .users
            .iter()
            .filter(|u| u.role != Role::Admin)
            .map(|u| (u.name.clone(), self.seed(&u.name)))
            .collect::<BTreeMap<_, _>>();
        config.reader_pull_expiry = Duration::from_secs(1);
        config
    }

    async fn gateway_bus(&self) -> Result<Bus> {
        Bus::jetstream(&self.gateway_config())
            .await
            .with_context(|| format!("admin connects; log:\n{}", self.server.log()))
    }

    /// A plain connection as `user`, and the permission violations the server reports on it.
    async fn raw(
        &self,
        user: &str,
    ) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>)> {
        let seed = std::fs::read_to_string(self.seed(user))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .custom_inbox_prefix(inbox_prefix(user))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) =
                        event
                    {
                        let _ = tx.send(text);
                    }
                }
            })
            .connect(self.server.url())
            .await?;
        Ok((client, rx))
    }
}

fn event(publisher: &str, token: &str) -> Outgoing {
    Outgoing::event(publisher, token, &unique_id(token), "opaque").expect("a valid event")
}

/// Awaits a refusal, and that it came quickly (from the violation, not a timeout).
async fn refused<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = hazchem_bus::Result<T>>,
) -> Result<String> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(ARRIVE, fut)
        .await
        .with_context(|| format!("{what}: no answer"))?;
    match outcome {
        Err(Error::PermissionDenied { detail, .. }) => {
            ensure!(
                started.elapsed() < REFUSED_WITHIN,
                "{what}: refused only after {:?}",
                started.elapsed()
            );
            Ok(detail)
        }
        other => anyhow::bail!("{what}: expected a permission refusal, got {other:?}"),
    }
}

async fn next_message(stream: &mut MessageStream) -> Result<Message> {
    tokio::time::timeout(ARRIVE, stream.next())
        .await
        .context("no message arrived")?
        .context("the reader ended")?
        .map_err(Into::into)
}

async fn violation(rx: &mut mpsc::UnboundedReceiver<String>) -> Result<String> {
    tokio::time::timeout(ARRIVE, rx.recv())
        .await
        .context("no permission violation reported")?
        .context("connection gone")
}

#[test]
fn committed_configuration_is_what_the_policy_generates() -> Result<()> {
    let root = workspace_root();
    let policy = Policy::load(root.join("deploy/policy.toml"))?;
    let dir = root.join("deploy/nats");
    for (name, expected) in generate(&policy, &NatsLayout::default()) {
        let path = dir.join(&name);
        let committed = std::fs::read_to_string(&path)
            .with_context(|| format!("{} is missing: run `hazchem deploy nats`", path.display()))?;
        ensure!(
            committed == expected,
            "{} differs from what deploy/policy.toml generates: run `hazchem deploy nats` \
             (first difference at line {})",
            path.display(),
            committed
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "end".to_owned(), |i| (i + 1).to_string())
        );
    }
    // No secret under deploy/: nkey seeds are 58 characters starting with S (SU for users).
    let gitignore = std::fs::read_to_string(dir.join(".gitignore"))?;
    ensure!(gitignore.lines().any(|l| l == "nkeys.conf"));
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        ensure!(
            !text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(is_seed),
            "{} holds an nkey seed",
            path.display()
        );
    }
    Ok(())
}

fn is_seed(word: &str) -> bool {
    word.len() == 58
        && word.starts_with('S')
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

#[test]
fn generated_configurations_are_valid_for_nats_server() -> Result<()> {
    let policy = Policy::default_policy();
    let layout = NatsLayout::default();
    let dir = tempfile::tempdir()?;
    for (name, text) in generate(&policy, &layout) {
        std::fs::write(dir.path().join(name), text)?;
    }
    let nkeys = ensure_keys(&users(&policy, &layout.names), &dir.path().join("seeds"))?;
    std::fs::write(dir.path().join("nkeys.conf"), nkeys)?;
    for name in ["nats-1.conf", "nats-2.conf", "nats-3.conf", "nats-dev.conf"] {
        check_config(dir.path(), name)?;
    }
    // Without the public keys the server refuses to start rather than run without users.
    std::fs::remove_file(dir.path().join("nkeys.conf"))?;
    ensure!(check_config(dir.path(), "nats-dev.conf").is_err());
    Ok(())
}

fn check_config(dir: &Path, name: &str) -> Result<()> {
    let output = std::process::Command::new(hazchem_tests::nats_server_binary())
        .args(["-t", "-c", name])
        .current_dir(dir)
        .output()?;
    ensure!(
        output.status.success(),
        "nats-server refuses {name}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn departments_publish_only_what_their_duties_cover() -> Result<()> {
    let deployment = Deployment::start(DEFAULT_POLICY);
    let bus = deployment.gateway_bus().await?;
    let transport = bus.for_principal("transport");

    // Its own duty: a waybill, acknowledged by JetStream.
    let ack = transport
        .publish(event("transport", "waybill_issued"))
        .await?;
    ensure!(ack.sequence == 1 && !ack.duplicate);

    // Another department's subject, and a type its duties do not cover.
    let detail = refused(
        "transport as psb",
        transport.publish(event("psb", "road_pass_issued")),
    )
    .await?;
    ensure!(
        detail.contains("hazchem.ev.psb.road_pass_issued"),
        "{detail}"
    );
    refused(
        "transport raising a sensor alarm",
        transport.publish(event("transport", "sensor_alarm_raised")),
    )
    .await?;

    // A batch: each message on its own.
    let results = transport
        .publish_many(vec![
            event("transport", "trip_started"),
            event("emergency", "incident_reported"),
            event("transport", "trip_completed"),
        ])
        .await;
    ensure!(
        matches!(results[0], Ok(a) if a.sequence == 2),
        "{results:?}"
    );
    ensure!(
        matches!(results[1], Err(Error::PermissionDenied { .. })),
        "{results:?}"
    );
    ensure!(
        matches!(results[2], Ok(a) if a.sequence == 3),
        "{results:?}"
    );
    ensure!(
        bus.last_sequence().await? == 3,
        "nothing refused was stored"
    );

    // A service publishes its own events only.
    let ledger = bus.for_principal("ledger");
    ledger
        .publish(event("ledger", "checkpoint_published"))
        .await?;
    refused(
        "ledger as emergency",
        ledger.publish(event("emergency", "penalty_decided")),
    )
    .await?;

    // Without credentials for a principal, its view refuses (fail closed).
    refused(
        "an unknown principal",
        bus.for_principal("nobody")
            .publish(event("nobody", "penalty_decided")),
    )
    .await?;

    // The same at the NATS level, on a plain connection as the department.
    let (client, mut violations) = deployment.raw("transport").await?;
    let js = async_nats::jetstream::new(client.clone());
    let ack = js
        .publish(
            format!("hazchem.ev.transport.waybill_issued.{}", unique_id("raw")),
            "raw".into(),
        )
        .await?
        .await?;
    ensure!(ack.sequence == 5, "{ack:?}");
    let denied = js
        .publish(
            format!("hazchem.ev.psb.road_pass_issued.{}", unique_id("raw")),
            "raw".into(),
        )
        .await?;
    let text = violation(&mut violations).await?;
    ensure!(
        text.contains("Permissions Violation for Publish to \"hazchem.ev.psb.road_pass_issued."),
        "{text}"
    );
    drop(denied);
    // Nor may a department peek at other users' inboxes or read single messages.
    client.subscribe("_INBOX.psb.>").await?;
    ensure!(
        violation(&mut violations)
            .await?
            .contains("Subscription to \"_INBOX.psb.>\"")
    );
    client
        .publish(
            "$JS.API.STREAM.MSG.GET.HAZCHEM_EVENTS",
            "{\"seq\":1}".into(),
        )
        .await?;
    ensure!(
        violation(&mut violations)
            .await?
            .contains("$JS.API.STREAM.MSG.GET")
    );
    ensure!(bus.last_sequence().await? == 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_read_only_what_they_are_entitled_to() -> Result<()> {
    let deployment = Deployment::start(&restricted_policy());
    let bus = deployment.gateway_bus().await?;
    let published = bus
        .for_principal("transport")
        .publish(event("transport", "waybill_issued"))
        .await?;
    let incident = bus
        .for_principal("fire")
        .publish(event("fire", "incident_reported"))
        .await?;
    let alarm = bus
        .for_principal("emergency")
        .publish(event("emergency", "sensor_alarm_raised"))
        .await?;
    ensure!((published.sequence, incident.sequence, alarm.sequence) == (1, 2, 3));

    let fire = bus.for_principal("fire");
    // One type it may read: a consumer filtered to it, on its own connection.
    let mut incidents = fire.read(
        Start::Beginning,
        Filter::subject("hazchem.ev.*.incident_reported.*")?,
    );
    incidents.ready().await?;
    ensure!(next_message(&mut incidents).await?.sequence == 2);
    // Narrower than its permission is fine too.
    let mut reader = fire.read(
        Start::Beginning,
        Filter::subject("hazchem.ev.emergency.sensor_alarm_raised.*")?,
    );
    ensure!(next_message(&mut reader).await?.sequence == 3);
    // Both its types: authorised pattern by pattern, delivered in order.
    let mut both = fire.read(
        Start::Beginning,
        Filter::new([
            "hazchem.ev.*.incident_reported.*",
            "hazchem.ev.*.sensor_alarm_raised.*",
        ])?,
    );
    ensure!(next_message(&mut both).await?.sequence == 2);
    ensure!(next_message(&mut both).await?.sequence == 3);
    let later = bus
        .for_principal("fire")
        .publish(event("fire", "incident_reported"))
        .await?;
    ensure!(next_message(&mut both).await?.sequence == later.sequence);
    ensure!(next_message(&mut incidents).await?.sequence == later.sequence);

    // A reader recovers from a server restart within its permissions (its ordered consumer is
    // recreated: consumer info, delete and a filtered create, all on its own connection).
    let mut deployment = deployment;
    tokio::task::block_in_place(|| deployment.server.restart());
    let after = bus
        .for_principal("fire")
        .publish(event("fire", "incident_reported"))
        .await?;
    ensure!(next_message(&mut incidents).await?.sequence == after.sequence);
    ensure!(next_message(&mut both).await?.sequence == after.sequence);

    // Everything, another type, a department's whole subtree, or a mix: refused.
    for filter in [
        Filter::all(),
        Filter::subject("hazchem.ev.*.waybill_issued.*")?,
        Filter::subject("hazchem.ev.transport.>")?,
        Filter::new([
            "hazchem.ev.*.incident_reported.*",
            "hazchem.ev.*.waybill_issued.*",
        ])?,
    ] {
        let what = format!("fire reading {:?}", filter.subjects());
        let mut reader = fire.read(Start::Beginning, filter);
        refused(&what, reader.ready()).await?;
    }
    // Departments that read everything may read everything.
    let mut all = bus
        .for_principal("transport")
        .read(Start::Beginning, Filter::all());
    ensure!(next_message(&mut all).await?.sequence == 1);

    // At the NATS level: no core subscription beyond its types, no consumer whose request
    // subject hides its filter, and no filter in the body other than the one in the subject.
    let (client, mut violations) = deployment.raw("fire").await?;
    client.subscribe("hazchem.ev.*.incident_reported.*").await?;
    client.subscribe("hazchem.ev.>").await?;
    ensure!(
        violation(&mut violations)
            .await?
            .contains("Subscription to \"hazchem.ev.>\"")
    );
    let body = |filter: &str| {
        serde_json::json!({
            "stream_name": "HAZCHEM_EVENTS",
            "config": {"name": "evil", "filter_subject": filter, "ack_policy": "none"},
            "action": "create",
        })
        .to_string()
    };
    client
        .publish(
            "$JS.API.CONSUMER.CREATE.HAZCHEM_EVENTS.evil",
            body("hazchem.ev.>").into(),
        )
        .await?;
    ensure!(
        violation(&mut violations)
            .await?
            .contains("$JS.API.CONSUMER.CREATE.HAZCHEM_EVENTS.evil\"")
    );
    let reply = client
        .request(
            "$JS.API.CONSUMER.CREATE.HAZCHEM_EVENTS.evil.hazchem.ev.*.incident_reported.*",
            body("hazchem.ev.>").into(),
        )
        .await?;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    ensure!(reply["error"]["err_code"] == 10131, "{reply}");
    Ok(())
}

#[tokio::test]
async fn services_and_the_admin_have_what_they_need() -> Result<()> {
    let deployment = Deployment::start(DEFAULT_POLICY);
    // The admin creates the stream and the cursor bucket, keeps cursors, reads single messages.
    let admin = deployment.gateway_bus().await?;
    admin.store_cursor("gateway-main", 7).await?;
    ensure!(admin.load_cursor("gateway-main").await? == Some(7));
    let first = admin
        .for_principal("emergency")
        .publish(event("emergency", "incident_reported"))
        .await?;
    ensure!(admin.get(first.sequence).await?.is_some());

    // A service in its own process, as its own user: may not manage the stream, so it looks it
    // up; reads everything, keeps cursors, publishes its own events.
    let mut config = JetStreamConfig::new(deployment.server.url());
    config.nkey_seed_file = Some(deployment.seed("ledger"));
    config.inbox_prefix = Some(inbox_prefix("ledger"));
    config.manage = false;
    config.reader_pull_expiry = Duration::from_secs(1);
    let ledger = Bus::jetstream(&config).await?;
    ensure!(ledger.last_sequence().await? == 1);
    ensure!(ledger.get(1).await?.is_some());
    ledger.store_cursor("ledger-main", 1).await?;
    ensure!(ledger.load_cursor("ledger-main").await? == Some(1));
    let mut all = ledger.read(Start::Beginning, Filter::all());
    ensure!(next_message(&mut all).await?.sequence == 1);
    let checkpoint = ledger
        .for_principal("ledger")
        .publish(event("ledger", "checkpoint_published"))
        .await?;
    ensure!(next_message(&mut all).await?.sequence == checkpoint.sequence);

    // The service user may not create or change the stream.
    config.manage = true;
    let detail = refused("a service managing the stream", Bus::jetstream(&config)).await?;
    ensure!(
        detail.contains("$JS.API.STREAM.UPDATE.HAZCHEM_EVENTS"),
        "{detail}"
    );
    Ok(())
}

#[tokio::test]
async fn the_gateway_publishes_and_serves_subscriptions_as_each_department() -> Result<()> {
    use hazchem_gateway::{Gateway, GatewayConfig, Metrics, Publisher};
    use hazchem_proto::v1;
    use hazchem_proto::v1::publish_service_client::PublishServiceClient;
    use hazchem_proto::v1::subscription_service_client::SubscriptionServiceClient;
    use hazchem_tests::{TestPki, dept, fresh, publisher_for, signed};

    let deployment = Deployment::start(&restricted_policy());
    let bus = deployment.gateway_bus().await?;
    let pki = TestPki::generate();
    let policy_file = deployment.secrets.path().join("policy.toml");
    std::fs::write(&policy_file, &deployment.policy_toml)?;
    let mut config = GatewayConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        tls: Some(pki.server_tls_files()),
        signing_keys: Some(pki.dev().key_registry_path()),
        policy: Some(policy_file),
        ..GatewayConfig::default()
    };
    let publisher = Publisher::from_config(&config, bus.clone(), Metrics::unregistered())?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let gateway = Gateway::new(&config, publisher, shutdown.clone())?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    config.listen = listener.local_addr()?;
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(gateway.serve(listener, shutdown));

    let publish = |event: v1::Event| {
        let pki = &pki;
        let addr = config.listen;
        async move {
            let principal = publisher_for(&event);
            let key = hazchem_tests::department_of(&event).map(|d| pki.signing_key(d));
            let mut client = PublishServiceClient::new(pki.channel(addr, &principal).await);
            client
                .publish(v1::PublishRequest {
                    event: Some(signed(&event, key.as_ref())),
                })
                .await
                .map(|r| r.into_inner().accepted.expect("accepted"))
        }
    };
    let waybill = publish(fresh("waybill_issued")).await?;
    let incident = publish(fresh("incident_reported")).await?;
    ensure!((waybill.sequence, incident.sequence) == (1, 2));

    // Fire reads only incidents and alarms: its unfiltered subscription is narrowed to them.
    let subscribe = |code: &'static str| {
        let pki = &pki;
        let addr = config.listen;
        async move {
            let mut client = SubscriptionServiceClient::new(pki.channel(addr, &dept(code)).await);
            client
                .subscribe(v1::SubscribeRequest::default())
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let mut fire = subscribe("fire").await?;
    let first = tokio::time::timeout(ARRIVE, fire.next())
        .await?
        .context("fire's subscription ended")??;
    ensure!(
        first.sequence == incident.sequence,
        "fire got {}",
        first.subject
    );
    // Transport reads everything.
    let mut transport = subscribe("transport").await?;
    for expected in [waybill.sequence, incident.sequence] {
        let item = tokio::time::timeout(ARRIVE, transport.next())
            .await?
            .context("transport's subscription ended")??;
        ensure!(item.sequence == expected);
    }
    Ok(())
}
