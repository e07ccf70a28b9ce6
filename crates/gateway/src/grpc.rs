//! The gRPC layer: authenticates each call, converts the wire types, and calls the core.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use hazchem_pki::authenticate;
use hazchem_proto::v1;
use hazchem_proto::v1::publish_service_server::PublishService;
use hazchem_proto::v1::subscription_service_server::SubscriptionService;
use tonic::{Request, Response, Status, Streaming};

use crate::publish::Publisher;
use crate::subscribe::{SubscriptionStream, Subscriptions};

/// The most events of one publish stream appended together (results come back in order).
const STREAM_PIPELINE: usize = 64;
/// The most events one batch call may carry.
pub const MAX_BATCH: usize = 1000;

#[tonic::async_trait]
impl PublishService for Publisher {
    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let principal = authenticate(&request)?;
        let signed = request.into_inner().event.unwrap_or_default();
        let accepted = Publisher::publish(self, &principal, &signed).await?;
        Ok(Response::new(v1::PublishResponse {
            accepted: Some(accepted.into()),
        }))
    }

    async fn publish_batch(
        &self,
        request: Request<v1::PublishBatchRequest>,
    ) -> Result<Response<v1::PublishBatchResponse>, Status> {
        let principal = authenticate(&request)?;
        let events = request.into_inner().events;
        if events.len() > MAX_BATCH {
            return Err(hazchem_admission::Rejection::Invalid(vec![
                hazchem_admission::FieldViolation::new(
                    "events",
                    "max_len",
                    format!(
                        "a batch carries at most {MAX_BATCH} events, got {}",
                        events.len()
                    ),
                ),
            ])
            .into());
        }
        let results = self.publish_batch(&principal, &events).await;
        Ok(Response::new(v1::PublishBatchResponse {
            results: results.into_iter().map(result_to_proto).collect(),
        }))
    }

    type PublishStreamStream =
        Pin<Box<dyn Stream<Item = Result<v1::PublishStreamResponse, Status>> + Send + 'static>>;

    async fn publish_stream(
        &self,
        request: Request<Streaming<v1::PublishStreamRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let principal = authenticate(&request)?;
        let publisher = self.clone();
        // Whatever has arrived is appended as one batch: pipelined like PublishBatch, and stored in the
        // order sent. A broken client stream ends the response after the events before it.
        let results = request
            .into_inner()
            .ready_chunks(STREAM_PIPELINE)
            .then(move |chunk| {
                let publisher = publisher.clone();
                let principal = principal.clone();
                async move {
                    let mut events = Vec::with_capacity(chunk.len());
                    let mut broken = None;
                    for item in chunk {
                        match item {
                            Ok(request) => events.push(request.event.unwrap_or_default()),
                            Err(status) => {
                                broken = Some(status);
                                break;
                            }
                        }
                    }
                    let mut out: Vec<Result<v1::PublishStreamResponse, Status>> = publisher
                        .publish_batch(&principal, &events)
                        .await
                        .into_iter()
                        .map(|result| {
                            Ok(v1::PublishStreamResponse {
                                result: Some(result_to_proto(result)),
                            })
                        })
                        .collect();
                    out.extend(broken.map(Err));
                    futures::stream::iter(out)
                }
            })
            .flatten();
        Ok(Response::new(Box::pin(results)))
    }
}

fn result_to_proto(result: Result<hazchem_kit::Accepted, Status>) -> v1::PublishResult {
    use v1::publish_result::Outcome;
    v1::PublishResult {
        outcome: Some(match result {
            Ok(accepted) => Outcome::Accepted(accepted.into()),
            Err(status) => Outcome::Rejected(hazchem_admission::to_rpc_status(&status)),
        }),
    }
}

#[tonic::async_trait]
impl SubscriptionService for Subscriptions {
    type SubscribeStream = SubscriptionStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let principal = authenticate(&request)?;
        let stream = Subscriptions::subscribe(self, principal, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn acknowledge_cursor(
        &self,
        request: Request<v1::AcknowledgeCursorRequest>,
    ) -> Result<Response<v1::AcknowledgeCursorResponse>, Status> {
        let principal = authenticate(&request)?;
        self.acknowledge(&principal, request.into_inner()).await?;
        Ok(Response::new(v1::AcknowledgeCursorResponse {}))
    }
}
