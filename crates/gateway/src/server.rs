//! Serving the gateway: TLS, the publish and subscription services, health and reflection.

use hazchem_pki::ServerTls;
use hazchem_proto::v1::publish_service_server::PublishServiceServer;
use hazchem_proto::v1::subscription_service_server::SubscriptionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
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
        let tls = ServerTls::from_files(&tls_files.cert, &tls_files.key, &tls_files.client_ca)?;
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
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<PublishServiceServer<Publisher>>()
            .await;
        health_reporter
            .set_serving::<SubscriptionServiceServer<Subscriptions>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hazchem_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| Error::Serve(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Serve(e.to_string()))?;
        tracing::info!(%addr, "gateway serving");
        // Client certificates are optional in the handshake so that a call without one is answered
        // with UNAUTHENTICATED (and a reason) rather than a bare TLS failure.
        Server::builder()
            .tls_config(self.tls.optional_client_auth())
            .map_err(|e| Error::Serve(e.to_string()))?
            .add_service(health)
            .add_service(reflection)
            .add_service(PublishServiceServer::new(self.publisher))
            .add_service(SubscriptionServiceServer::new(self.subscriptions))
            .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
            .await
            .map_err(|e| Error::Serve(e.to_string()))?;
        tracing::info!(%addr, "gateway stopped");
        Ok(())
    }
}

/// Accepted connections of a gRPC listener, with `TCP_NODELAY`: a unary response is written as more than
/// one segment, and without it Nagle's algorithm holds the last one until the client's delayed ACK (about
/// 40 ms a call). tonic sets it only on listeners it binds itself. Every service serves through this.
pub fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
