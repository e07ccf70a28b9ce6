//! Mutual TLS end to end: a real tonic server (the standard health service behind an interceptor
//! that calls `hazchem_pki::authenticate`) on 127.0.0.1 with the development PKI.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hazchem_pki::{ClientAuth, ClientTls, DevPki, Principal, auth_interceptor, authenticate};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Principal>>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    _reporter: tonic_health::server::HealthReporter,
}

impl TestServer {
    async fn start(pki: &DevPki, client_auth: ClientAuth) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        // The interceptor authenticates (hazchem_pki::authenticate) and records who called.
        let service = InterceptedService::new(health, move |req: tonic::Request<()>| {
            let principal = authenticate(&req)?;
            // The library interceptor agrees, and leaves the principal in the extensions.
            let req = auth_interceptor(req)?;
            assert_eq!(req.extensions().get::<Principal>(), Some(&principal));
            recorder.lock().unwrap().push(principal);
            Ok(req)
        });
        let tls = pki.server_tls().unwrap().config(client_auth);
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop.await;
            });
        let handle = tokio::spawn(server);
        Self {
            addr,
            seen,
            shutdown: Some(shutdown),
            handle: Some(handle),
            _reporter: reporter,
        }
    }

    fn seen(&self) -> Vec<Principal> {
        self.seen.lock().unwrap().clone()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Serving,
    /// The gRPC call returned a status.
    Status(tonic::Status),
    /// The channel could not even be established.
    ConnectFailed(String),
}

async fn health_check(addr: SocketAddr, tls: ClientTlsConfig) -> Outcome {
    let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => return Outcome::ConnectFailed(format!("{e:?}")),
    };
    match HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(_) => Outcome::Serving,
        Err(status) => Outcome::Status(status),
    }
}

/// The server refused the TLS handshake: the client saw a fatal TLS alert, and the service never
/// ran (so the status is not one the application chose).
fn assert_handshake_rejected(outcome: &Outcome) {
    let chain = match outcome {
        Outcome::ConnectFailed(error) => error.clone(),
        Outcome::Status(status) => {
            assert_ne!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            let mut chain = format!("{status}");
            let mut source = std::error::Error::source(status);
            while let Some(error) = source {
                chain.push_str(&format!(": {error}"));
                source = error.source();
            }
            chain
        }
        Outcome::Serving => panic!("the server accepted the connection and served the call"),
    };
    assert!(
        chain.contains("alert"),
        "expected a TLS alert from the server, got: {chain}"
    );
}

fn dev_pki() -> (tempfile::TempDir, DevPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    (dir, pki)
}

#[tokio::test]
async fn department_certificate_is_authenticated_as_that_department() {
    let (_dir, pki) = dev_pki();
    let server = TestServer::start(&pki, ClientAuth::Optional).await;
    let eeb = Principal::Department("eeb".parse().unwrap());
    let ledger = Principal::Service("ledger".to_owned());
    let auditor = DevPki::principals()
        .into_iter()
        .find(|p| matches!(p, Principal::Auditor(_)))
        .unwrap();
    for principal in [&eeb, &ledger, &auditor] {
        let tls = pki.client_tls(principal).unwrap().config();
        let outcome = health_check(server.addr, tls).await;
        assert!(
            matches!(outcome, Outcome::Serving),
            "{principal}: {outcome:?}"
        );
    }
    assert_eq!(server.seen(), vec![eeb, ledger, auditor]);
    server.stop().await;
}

#[tokio::test]
async fn client_without_certificate_gets_unauthenticated_not_a_handshake_failure() {
    let (_dir, pki) = dev_pki();
    let server = TestServer::start(&pki, ClientAuth::Optional).await;
    let tls = ClientTls::anonymous_config(&pki.ca_pem().unwrap());
    match health_check(server.addr, tls).await {
        Outcome::Status(status) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            assert!(
                status.message().contains("no client certificate"),
                "{status:?}"
            );
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    assert!(server.seen().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_handshake() {
    let (_dir, pki) = dev_pki();
    let (_other_dir, other) = dev_pki();
    let server = TestServer::start(&pki, ClientAuth::Optional).await;
    let miit = Principal::Department("miit".parse().unwrap());
    // Trusts our server, but presents a certificate issued by a different CA.
    let foreign = ClientTls {
        ca_pem: pki.ca_pem().unwrap(),
        ..other.client_tls(&miit).unwrap()
    };
    let outcome = health_check(server.addr, foreign.config()).await;
    assert_handshake_rejected(&outcome);
    assert!(server.seen().is_empty(), "{:?}", server.seen());

    // The legitimate certificate for the same department still works on the same server.
    let outcome = health_check(server.addr, pki.client_tls(&miit).unwrap().config()).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");
    assert_eq!(server.seen(), vec![miit]);
    server.stop().await;
}

#[tokio::test]
async fn required_client_auth_fails_the_handshake_without_a_certificate() {
    let (_dir, pki) = dev_pki();
    let server = TestServer::start(&pki, ClientAuth::Required).await;
    let tls = ClientTls::anonymous_config(&pki.ca_pem().unwrap());
    let outcome = health_check(server.addr, tls).await;
    assert_handshake_rejected(&outcome);
    assert!(server.seen().is_empty());
    // With a certificate it works.
    let fire = Principal::Department("fire".parse().unwrap());
    let outcome = health_check(server.addr, pki.client_tls(&fire).unwrap().config()).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");
    server.stop().await;
}
