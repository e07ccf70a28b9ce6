//! Serving over gRPC: the TLS, health and reflection every Hazchem Bus server shares, and running a
//! server together with the loop that follows the stream.

use std::path::PathBuf;

use hazchem_pki::ServerTls;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::error::ServeError;

/// Files of a TLS server that requires department, service and auditor client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFiles {
    /// PEM certificate chain of this server.
    pub cert: PathBuf,
    /// PEM private key of this server (read, never logged).
    pub key: PathBuf,
    /// PEM certificate(s) of the CA that issues client certificates.
    pub client_ca: PathBuf,
}

impl ServerTlsFiles {
    /// Reads the three files.
    pub fn load(&self) -> Result<ServerTls, hazchem_pki::PkiError> {
        ServerTls::from_files(&self.cert, &self.key, &self.client_ca)
    }
}

/// Serde for a `Duration` written as whole seconds in configuration files.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Serves `routes` on `listener` over TLS until `shutdown` is cancelled, then stops accepting calls and
/// lets running ones finish. Adds gRPC health, reporting each of `services` (full service names) as
/// serving, and reflection over the whole contract; every call gets a `grpc` tracing span and is counted
/// in [`crate::GrpcMetrics`]. Every Hazchem Bus server serves through this.
///
/// Client certificates are optional in the handshake so that a call without one is answered with
/// UNAUTHENTICATED (and a reason) rather than a bare TLS failure; each service authenticates its calls.
pub async fn serve_grpc(
    what: &str,
    routes: Routes,
    services: &[&str],
    listener: TcpListener,
    tls: &ServerTls,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in services {
        health_reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hazchem_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|source| ServeError::Reflection {
            what: what.to_owned(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Listener {
            what: what.to_owned(),
            source,
        })?;
    let transport = |source| ServeError::Transport {
        what: what.to_owned(),
        source,
    };
    tracing::info!(%addr, "{what} serving");
    Server::builder()
        .tls_config(tls.optional_client_auth())
        .map_err(transport)?
        .layer(crate::observe::ObserveLayer::new(
            what,
            crate::metrics::GrpcMetrics::global(),
        ))
        .add_routes(routes.add_service(health).add_service(reflection))
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .map_err(transport)?;
    tracing::info!(%addr, "{what} stopped");
    Ok(())
}

/// Runs the two halves of a service, its gRPC server and the loop that follows the stream, until
/// `shutdown`. When either ends or fails, the other is stopped too: a service that can no longer follow
/// the stream must not go on answering from a stale state. The follower's error is returned first.
pub async fn run_together<E, S, F>(
    shutdown: &CancellationToken,
    serve: impl FnOnce(CancellationToken) -> S,
    follow: impl FnOnce(CancellationToken) -> F,
) -> std::result::Result<(), E>
where
    S: Future<Output = std::result::Result<(), E>>,
    F: Future<Output = std::result::Result<(), E>>,
{
    async fn then_stop<T>(half: impl Future<Output = T>, stop: CancellationToken) -> T {
        let result = half.await;
        stop.cancel();
        result
    }
    let stop = shutdown.child_token();
    let (served, followed) = tokio::join!(
        then_stop(serve(stop.clone()), stop.clone()),
        then_stop(follow(stop.clone()), stop.clone()),
    );
    followed.and(served)
}

/// Accepted connections of a gRPC listener, with `TCP_NODELAY`: a unary response is written as more than
/// one segment, and without it Nagle's algorithm holds the last one until the client's delayed ACK (about
/// 40 ms a call). tonic sets it only on listeners it binds itself. Every service serves through this.
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
