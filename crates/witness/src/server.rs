//! The witness's HTTP server: C2SP tlog-witness `add-checkpoint`.
//!
//! One route, `POST /add-checkpoint`; any other path is `404`, another method on it `405`. A body over
//! [`MAX_BODY`] is `413`, one that is not UTF-8 `400`. Each request is answered from
//! [`Witness::add_checkpoint`] under one lock, so checking the old size and recording the new checkpoint
//! are atomic (the race the protocol warns of cannot happen), and the state file is written before the
//! answer. Refusals are logged: a fork or a proof that does not hold at error level (they may be evidence
//! of a misbehaving log), the rest at warning level.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hazchem_kit::{SharedClock, SystemClock};
use hazchem_verify::note::VerifierKey;
use hazchem_verify::witness::{
    ADD_CHECKPOINT_PATH, AddCheckpoint, Cosigner, Refusal, SIZE_CONTENT_TYPE, Witness, WitnessKey,
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::WitnessServiceConfig;
use crate::error::Error;

/// The largest request body accepted: a checkpoint with a few signatures and 63 proof lines is a few
/// kilobytes.
pub const MAX_BODY: usize = 64 * 1024;

/// A witness behind the tlog-witness HTTP interface. Cheap to clone; clones share the witness.
#[derive(Debug, Clone)]
pub struct WitnessServer {
    witness: Arc<Mutex<Witness>>,
    key: WitnessKey,
    clock: SharedClock,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl WitnessServer {
    /// Serves `witness` over plain HTTP, with cosignature times from the system clock.
    pub fn new(witness: Witness) -> Self {
        WitnessServer {
            key: witness.key(),
            witness: Arc::new(Mutex::new(witness)),
            clock: SystemClock::shared(),
            tls: None,
        }
    }

    /// The witness of a configuration: its key, the logs' keys, its state file (read if it exists), and
    /// TLS if configured.
    pub fn from_config(config: &WitnessServiceConfig) -> Result<Self, Error> {
        config.validate()?;
        let name = config.name.as_deref().expect("validated");
        let key = hazchem_pki::SigningKey::load(config.signing_key.as_ref().expect("validated"))?;
        let cosigner = Cosigner::new(name, key)
            .map_err(|e| hazchem_kit::ConfigError::new("witness.name", e.to_string()))?;
        let mut logs = Vec::new();
        for (i, log) in config.logs.iter().enumerate() {
            logs.push(
                VerifierKey::load_for_origin(&log.key, log.origin.as_deref()).map_err(|e| {
                    hazchem_kit::ConfigError::new(format!("witness.logs[{i}].key"), e.to_string())
                })?,
            );
        }
        let witness = Witness::new(cosigner, logs, Some(config.state.clone()))?;
        let server = WitnessServer::new(witness);
        match &config.tls {
            Some(tls) => server.with_tls(&tls.cert, &tls.key),
            None => Ok(server),
        }
    }

    /// Takes cosignature times from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves HTTPS with this certificate (PEM chain) and key.
    pub fn with_tls(
        mut self,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, Error> {
        self.tls = Some(crate::tls::server_config(cert, key)?);
        Ok(self)
    }

    /// The witness's key, as auditors and the ledger trust it.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Serves on `listener` until `shutdown`; connections in progress finish their request.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let addr = listener.local_addr().map_err(|source| Error::Io {
            what: "the witness's listener".into(),
            source,
        })?;
        tracing::info!(witness = %self.key, %addr, tls = self.tls.is_some(), "witness serving");
        let acceptor = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let acceptor = acceptor.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => server.connection(TokioIo::new(tls), peer, shutdown).await,
                        Err(error) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    },
                    None => {
                        server
                            .connection(TokioIo::new(stream), peer, shutdown)
                            .await
                    }
                }
            });
        }
        connections.close();
        connections.wait().await;
        Ok(())
    }

    async fn connection<I>(self, io: I, peer: SocketAddr, shutdown: CancellationToken)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |request| {
            let server = self.clone();
            async move { Ok::<_, std::convert::Infallible>(server.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != ADD_CHECKPOINT_PATH {
            return text(
                StatusCode::NOT_FOUND,
                "not found: the witness serves POST /add-checkpoint\n",
            );
        }
        if request.method() != Method::POST {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "add-checkpoint is a POST\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the request body exceeds {MAX_BODY} bytes\n"),
                );
            }
            Err(error) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the body: {error}\n"),
                );
            }
        };
        let Ok(body) = String::from_utf8(body.to_vec()) else {
            return text(StatusCode::BAD_REQUEST, "the request body is not UTF-8\n");
        };
        let time = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        let witness = self.witness.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let request = AddCheckpoint::parse(&body)?;
            witness
                .lock()
                .expect("not poisoned")
                .add_checkpoint(&request, time)
        })
        .await;
        match answer {
            Ok(Ok(line)) => text(StatusCode::OK, &line),
            Ok(Err(refusal)) => self.refused(&refusal),
            Err(error) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the witness failed: {error}\n"),
            ),
        }
    }

    fn refused(&self, refusal: &Refusal) -> Response<Full<Bytes>> {
        match refusal {
            Refusal::Fork { .. } | Refusal::Inconsistent { .. } => {
                tracing::error!(witness = %self.key, %refusal, "refused to cosign: the log may have forked");
            }
            _ => tracing::warn!(witness = %self.key, %refusal, "refused to cosign"),
        }
        let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
        match refusal.recorded_size() {
            Some(size) => {
                let mut response = text(status, &format!("{size}\n"));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(SIZE_CONTENT_TYPE),
                );
                response
            }
            None => text(status, &format!("{refusal}\n")),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
