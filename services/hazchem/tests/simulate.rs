//! `hazchem simulate` against `hazchem dev`, as processes: the default simulated city publishes through
//! the gateway as all nine departments with zero rejections, injects every kind of violation, and
//! writes a ground truth naming the events of each; running it again with the same seed and epoch is
//! answered entirely as duplicates.

use std::path::Path;
use std::process::Command;

use hazchem_tests::process::{DevProcess, free_port, scrub_env};
use serde_json::Value;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hazchem"))
}

fn simulate(data: &Path, endpoint: &str, truth: &Path, extra: &[&str]) -> Value {
    let mut command = Command::new(exe());
    command
        .args(["simulate", "--endpoint", endpoint, "--data-dir"])
        .arg(data)
        .args([
            "--events",
            "300",
            "--inject",
            "all",
            "--no-progress",
            "--json",
            "--truth",
        ])
        .arg(truth)
        .args(extra);
    let output = scrub_env(&mut command)
        .output()
        .expect("run hazchem simulate");
    assert!(
        output.status.success(),
        "hazchem simulate failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("the summary is JSON")
}

#[test]
fn simulated_city_publishes_as_nine_departments_with_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dev = DevProcess::start(exe(), &data, free_port(), None);
    let endpoint = dev.banner.gateway.clone();
    let truth_path = dir.path().join("truth.json");

    let summary = simulate(&data, &endpoint, &truth_path, &[]);
    assert_eq!(summary["rejected"], 0, "{summary:#}");
    assert_eq!(summary["duplicates"], 0, "{summary:#}");
    let departments = summary["departments"].as_object().unwrap();
    assert_eq!(departments.len(), 9, "{summary:#}");
    for (code, d) in departments {
        assert!(d["accepted"].as_u64().unwrap() > 0, "{code}: {d}");
    }

    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    assert_eq!(
        truth["events"].as_u64(),
        summary["accepted"].as_u64(),
        "every generated event is on the record"
    );
    let violations = truth["violations"].as_array().unwrap();
    let kinds: Vec<&str> = violations
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "listed-licence",
            "toxic-sale-without-permit",
            "unlicensed-carrier-waybill",
            "unbalanced-batch",
            "alarm-storm"
        ]
    );
    let run = truth["run"].as_str().unwrap();
    for v in violations {
        let ids = v["event_ids"].as_array().unwrap();
        assert!(!ids.is_empty(), "{v}");
        for id in ids {
            assert!(id.as_str().unwrap().starts_with(run), "{v}");
        }
        assert!(v["enterprise"]["uscc"].as_str().unwrap().len() == 18, "{v}");
        assert!(!v["expected_detection"].as_str().unwrap().is_empty());
    }

    // Reproducible: the same seed and epoch give the same bytes, answered as duplicates.
    let epoch = truth["epoch"].as_str().unwrap().to_owned();
    let again = simulate(
        &data,
        &endpoint,
        &dir.path().join("truth-again.json"),
        &["--epoch", &epoch],
    );
    assert_eq!(again["rejected"], 0, "{again:#}");
    assert_eq!(again["accepted"], 0, "{again:#}");
    assert_eq!(again["duplicates"], summary["accepted"], "{again:#}");
    let truth_again: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("truth-again.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(truth_again, truth);
    drop(dev);
}
