//! Informal publish throughput, printed rather than asserted. Ignored by default:
//! `cargo test -p hazchem-tests --test bus_throughput -- --ignored --nocapture`.

use std::time::Instant;

use anyhow::Result;
use hazchem_bus::{Bus, JetStreamConfig, Outgoing};
use hazchem_tests::NatsServer;

fn msg(prefix: &str, i: usize) -> Outgoing {
    let id = format!("{prefix}-{i}");
    Outgoing::event("miit", "sale", &id, vec![0u8; 256]).expect("valid")
}

async fn measure(name: &str, bus: &Bus) -> Result<()> {
    let n = 2_000;
    let t = Instant::now();
    for i in 0..n {
        bus.publish(msg("single", i)).await?;
    }
    report(name, "sequential publish", n, t);

    let (tasks, per) = (64, 100);
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|k| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    bus.publish(msg(&format!("conc{k}"), i)).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    report(name, "64 concurrent publishers", tasks * per, t);

    let n = 20_000;
    let batch: Vec<Outgoing> = (0..n).map(|i| msg("batch", i)).collect();
    let t = Instant::now();
    for r in bus.publish_many(batch).await {
        r?;
    }
    report(name, "publish_many", n, t);
    Ok(())
}

fn report(bus: &str, what: &str, n: usize, since: Instant) {
    let secs = since.elapsed().as_secs_f64();
    println!(
        "{bus:>10} {what:<26} {n:>6} msgs in {secs:>6.3}s = {:>8.0} msg/s",
        n as f64 / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "informal measurement; run with --ignored --nocapture"]
async fn publish_throughput() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bus = Bus::embedded(dir.path()).await?;
    measure("embedded", &bus).await?;

    let server = NatsServer::start();
    let bus = Bus::jetstream(&JetStreamConfig::new(server.url())).await?;
    measure("jetstream", &bus).await?;
    Ok(())
}
