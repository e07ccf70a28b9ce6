//! The point of this crate: an auditor's tool can depend on it alone, without the bus, its store, gRPC or
//! an async runtime. `cargo tree` lists every crate it builds with (normal dependencies, transitively, on
//! this platform; offline, from `Cargo.lock`), and none of those may be among them.

use std::path::Path;
use std::process::Command;

/// Crates the verifier must never build with, directly or transitively.
const FORBIDDEN: &[&str] = &[
    "sled",
    "async-nats",
    "tonic",
    "prost",
    "hazchem-pki",
    "hazchem-bus",
    "tokio",
];

#[test]
fn the_verifier_depends_on_no_store_bus_grpc_or_runtime() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "--manifest-path"])
        .arg(&manifest)
        .args([
            "--package",
            "hazchem-verify",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Each line is `<name> v<version>[ (<path>)][ (*)]`.
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        names.first(),
        Some(&"hazchem-verify"),
        "the tree starts at the crate:\n{stdout}"
    );
    assert!(
        names.contains(&"ed25519-dalek") && names.contains(&"sha2"),
        "the tree lists the transitive dependencies:\n{stdout}"
    );
    let found: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|forbidden| names.contains(forbidden))
        .collect();
    assert!(
        found.is_empty(),
        "hazchem-verify depends on {found:?}, which an auditor's tool must not need:\n{stdout}"
    );
}
