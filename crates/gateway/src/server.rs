//! Serving the gateway over gRPC (through the kit's `serve_grpc`, as every server does).

use hazchem_pki::ServerTls;
use hazchem_proto::v1::publish_service_server::PublishServiceServer;
use hazchem_proto::v1::subscription_service_server::SubscriptionServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;

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
        hazchem_kit::serve_grpc(
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
        .map_err(Error::from)
    }
}
