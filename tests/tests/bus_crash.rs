//! The embedded bus keeps every acknowledged message across a crash: a child process (this test
//! binary, re-run as `crash_child`) publishes from several tasks and prints each ack; the parent
//! SIGKILLs it mid-stream, reopens the directory, and checks every printed ack.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt;
use hazchem_bus::{Ack, Bus, Filter, Outgoing, Start};
use tokio::io::{AsyncBufReadExt, BufReader};

const CHILD_ENV: &str = "HAZCHEM_BUS_CRASH_CHILD_DIR";
const TASKS: usize = 8;
/// Acks to see before pulling the plug.
const KILL_AFTER: usize = 400;

fn message(task: usize, i: usize) -> Outgoing {
    let id = format!("t{task}-{i}");
    Outgoing::event("emergency", "incident", &id, format!("payload {id}")).expect("valid")
}

/// Does nothing unless run by [`embedded_bus_keeps_every_ack_across_a_crash`].
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let bus = Bus::embedded(Path::new(&dir)).await.expect("open bus");
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let ack = bus.publish(message(task, i)).await.expect("publish");
                        // Line-buffered: each ack reaches the pipe before the next publish.
                        println!("ACK {task} {i} {}", ack.sequence);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("publisher");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_keeps_every_ack_across_a_crash() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bus_dir = dir.path().join("bus");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &bus_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("re-run the test binary as the child")?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();

    let mut acks: Vec<(usize, usize, u64)> = Vec::new();
    let parse = |line: &str| -> Option<(usize, usize, u64)> {
        let mut parts = line.strip_prefix("ACK ")?.split(' ');
        Some((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        ))
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while acks.len() < KILL_AFTER {
            let line = lines.next_line().await?.context("child exited early")?;
            acks.extend(parse(&line));
        }
        anyhow::Ok(())
    })
    .await
    .context("child too slow")??;
    child.start_kill()?; // SIGKILL
    child.wait().await?;
    // Acks printed before the kill are still in the pipe.
    while let Some(line) = lines.next_line().await? {
        acks.extend(parse(&line));
    }

    let bus = Bus::embedded(&bus_dir).await?;
    let last = bus.last_sequence().await?;
    for &(task, i, sequence) in &acks {
        let stored = bus
            .get(sequence)
            .await?
            .with_context(|| format!("acked message {sequence} lost"))?;
        ensure!(stored.id() == format!("t{task}-{i}"), "{stored:?}");
        ensure!(sequence <= last);
    }
    // The log is gapless and every message in it is whole.
    let all: Vec<_> = bus
        .read(Start::Beginning, Filter::all())
        .take(last as usize)
        .collect()
        .await;
    for (n, message) in all.into_iter().enumerate() {
        let message = message?;
        ensure!(message.sequence == n as u64 + 1);
        ensure!(message.payload == format!("payload {}", message.id()).into_bytes());
    }
    // Deduplication survived the crash too.
    let (task, i, sequence) = acks[acks.len() / 2];
    let again = bus.publish(message(task, i)).await?;
    ensure!(
        again
            == Ack {
                sequence,
                duplicate: true
            },
        "{again:?}"
    );
    println!("{} acks checked, {last} messages survived", acks.len());
    Ok(())
}
