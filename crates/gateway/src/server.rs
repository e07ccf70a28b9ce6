//! Serving over gRPC: the gateway, and the TLS, health and reflection every Hazchem Bus server shares.

use hazchem_pki::ServerTls;
use hazchem_proto::v1::publish_service_server::PublishServiceServer;
use hazchem_proto::v1::subscription_service_server::SubscriptionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::config::GatewayConfig;
use crate::error::{Error, Result};
use crate::publish::Publisher;
use crate::subscribe::Subscriptions;

/// The gateway, built from its configuration and a bus, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    publisher: Publisher,
    subscriptions: Subscriptions,
    tls: ServerTls,
}

impl Gateway {
    /// Loads the TLS files the configuration names; `publisher` is the shared publishing core (with any
    /// guards already added).
    pub fn new(
        config: &GatewayConfig,
        publisher: Publisher,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let tls_files = config.tls.as_ref().expect("validated");
        let tls = tls_files.load()?;
        let subscriptions = Subscriptions::new(
            publisher.bus().clone(),
            publisher.admission_arc(),
            publisher.metrics().clone(),
            shutdown,
        );
        Ok(Gateway {
            publisher,
            subscriptions,
            tls,
        })
    }

    /// The publishing core, for in-process services.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Serves until `shutdown` is cancelled, then stops accepting calls and lets running ones finish.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let routes = Routes::new(PublishServiceServer::new(self.publisher))
            .add_service(SubscriptionServiceServer::new(self.subscriptions));
        serve_grpc(
            "gateway",
            routes,
            &[
                PublishServiceServer::<Publisher>::NAME,
                SubscriptionServiceServer::<Subscriptions>::NAME,
            ],
            listener,
            &self.tls,
            shutdown,
        )
        .await
    }
}

/// Serves `routes` on `listener` over TLS until `shutdown` is cancelled, then stops accepting calls and
/// lets running ones finish. Adds gRPC health, reporting each of `services` (full service names) as
/// serving, and reflection over the whole contract. Every Hazchem Bus server serves through this.
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
) -> Result<()> {
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
        .map_err(|e| Error::Serve(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    tracing::info!(%addr, "{what} serving");
    Server::builder()
        .tls_config(tls.optional_client_auth())
        .map_err(|e| Error::Serve(e.to_string()))?
        .add_routes(routes.add_service(health).add_service(reflection))
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Serve(e.to_string()))?;
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
