//! Every gRPC call to every server, observed in one place: a tracing span named `grpc` with the server and
//! the method (`/hazchem.v1.CreditService/Check`), and [`GrpcMetrics`] (count by status code, latency).
//! [`crate::serve_grpc`] puts this layer in front of every service, so a query, a command and a publish
//! are all visible the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument as _;

use crate::metrics::GrpcMetrics;

/// The layer: wraps a server's routes.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    server: Arc<str>,
    metrics: GrpcMetrics,
}

impl ObserveLayer {
    pub fn new(server: &str, metrics: GrpcMetrics) -> Self {
        ObserveLayer {
            server: server.into(),
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

/// The gRPC status of a response whose headers carry it (errors, answered "trailers only"); a response
/// that starts normally is `OK` (a stream that fails later is counted here as started).
fn code_of(headers: &http::HeaderMap) -> &'static str {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("grpc", server = %self.layer.server, method = %method);
        let layer = self.layer.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(
            async move {
                let response = answer.await;
                let code = match &response {
                    Ok(response) => code_of(response.headers()),
                    Err(_) => "TRANSPORT",
                };
                layer
                    .metrics
                    .call(&layer.server, &method, code, started.elapsed());
                tracing::debug!(code, "answered");
                response
            }
            .instrument(span),
        )
    }
}
