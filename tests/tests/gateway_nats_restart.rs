//! The gateway over JetStream while `nats-server` goes away and comes back (same port, same store):
//! a publish while it is down is refused as UNAVAILABLE (never acknowledged), a retry with the same
//! id after it is back is accepted exactly once, and a subscription rides the restart out, delivering
//! every event once, in order.

use std::time::{Duration, Instant};

use hazchem_proto::v1;
use hazchem_tests::{
    ARRIVE, TestBus, TestGateway, auditor, delivered_ids, dept, fresh, signed, subscribe_request,
    take_deliveries,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_rides_out_a_nats_server_restart() {
    let mut gw = TestGateway::start(TestBus::jetstream().await).await;
    let transport = dept("transport");
    let mut stream = gw
        .subscribe(
            &auditor(),
            subscribe_request(v1::EventFilter::default(), None),
        )
        .await
        .unwrap();

    let mut ids = Vec::new();
    for _ in 0..5 {
        let event = fresh("waybill_issued");
        gw.publish_event(&event).await.unwrap();
        ids.push(event.id);
    }
    assert_eq!(delivered_ids(&take_deliveries(&mut stream, 5).await), ids);

    // Down: the publish is not acknowledged.
    let nats = gw.bus_mut().nats_mut().expect("a JetStream bus");
    tokio::task::block_in_place(|| nats.stop());
    let during = fresh("waybill_issued");
    let refused = gw
        .publish_as(&transport, signed(&during, None))
        .await
        .expect_err("no acknowledgement without the bus");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains(&during.id), "{refused:?}");

    // Back: the retry is accepted, once (the first attempt may have reached the stream after all).
    let nats = gw.bus_mut().nats_mut().expect("a JetStream bus");
    tokio::task::block_in_place(|| nats.restart());
    let deadline = Instant::now() + ARRIVE;
    let retried = loop {
        match gw.publish_as(&transport, signed(&during, None)).await {
            Ok(accepted) => break accepted,
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the retry failed: {status:?}"),
        }
    };
    assert_eq!(retried.event_id, during.id);
    ids.push(during.id.clone());
    let after = fresh("waybill_issued");
    let accepted = gw.publish_event(&after).await.unwrap();
    assert!(!accepted.duplicate);
    assert_eq!(accepted.sequence, retried.sequence + 1);
    ids.push(after.id);

    // The subscription continues where it was: every event once, in order.
    let delivered = take_deliveries(&mut stream, 2).await;
    assert_eq!(
        delivered.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        [6, 7]
    );
    assert_eq!(delivered_ids(&delivered), ids[5..]);
    let records = gw.bus().records().await;
    assert_eq!(
        records
            .iter()
            .map(|r| r.event.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
}
