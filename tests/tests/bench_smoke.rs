//! The benchmark's code path with tiny sizes against a real nats-server: every measurement runs and
//! reports; nothing about speed is asserted.

use hazchem_sim::bench::{BenchConfig, Profile, render, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_profile_runs_every_measurement() {
    let config = BenchConfig {
        nats_server: Some(hazchem_tests::nats_server_binary()),
        ..BenchConfig::new(Profile::Smoke)
    };
    let report = run(&config, &|step| eprintln!("bench: {step}"))
        .await
        .unwrap();
    assert_eq!(report.ingest.len(), 1);
    let rows = &report.ingest[0].rows;
    assert_eq!(rows.len(), 4);
    for row in rows {
        for rate in [&row.raw, &row.bus, &row.gateway] {
            assert_eq!(rate.failed, 0, "{row:?}");
            assert!(rate.events > 0 && rate.per_second > 0.0, "{row:?}");
        }
    }
    assert!(report.payloads.mean_record_bytes > report.payloads.mean_event_bytes);
    assert_eq!(report.latency.lost, 0, "{:?}", report.latency);
    assert_eq!(report.latency.publish_to_delivery.samples, 100);
    match &report.ledger {
        Some(ledger) => {
            // Everything the run stored, ingested and verified.
            assert_eq!(ledger.append.events, 3 * 720 + 100, "{ledger:?}");
            assert_eq!(ledger.verify.events, ledger.append.events);
            assert!(report.headlines[0].end_to_end_seconds.is_some());
        }
        None => assert!(!report.ledger_note.is_empty()),
    }
    let table = render(&report);
    assert!(table.contains("gw/raw"), "{table}");
    assert!(table.contains("10.97 million"), "{table}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ingest"][0]["sync_interval"], "default");
    assert_eq!(report.headlines.len(), 1);
    assert_eq!(json["headlines"][0]["sync_interval"], "default");
}
