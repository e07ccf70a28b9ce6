//! `hazchem dev` runs the nine departments' witnesses, each its own HTTPS server on loopback that the
//! ledger asks over the C2SP tlog-witness protocol: a checkpoint it serves carries their nine
//! cosignatures, `audit verify --witnesses 9` passes online and on an exported bundle and on the stream,
//! and `--witnesses 10`, or a key list with one witness key replaced, fails naming how many good
//! cosignatures it found. `audit verify` re-verifies origin signatures with the key registry it is given
//! (`--key-registry`) and fails naming the leaf when that registry lacks the signer's key. And
//! `hazchem serve witness`, a department's own witness process, cosigns and refuses a fork, also after a
//! restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hazchem_domain::Department;
use hazchem_ledger::witness::Cosigner;
use hazchem_pki::{DevPki, SigningKey};
use hazchem_tests::fixtures::workspace_root;
use hazchem_tests::process::{DevProcess, free_port, scrub_env};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hazchem"))
}

/// Runs a printed command (its executable resolved to the binary under test) with extra arguments.
fn run(printed: &[String], extra: &[&str]) -> (bool, String) {
    let mut command = Command::new(exe());
    command
        .args(&printed[1..])
        .args(extra)
        .current_dir(workspace_root());
    let Output {
        status,
        stdout,
        stderr,
    } = scrub_env(&mut command).output().expect("run the command");
    (
        status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

/// The command on the line after the banner line containing `marker`, split on whitespace.
fn after(lines: &[String], marker: &str) -> Vec<String> {
    let at = lines
        .iter()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in the banner:\n{}", lines.join("\n")));
    lines[at + 1]
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn hazchem_dev_checkpoints_are_cosigned_by_the_nine_witnesses() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().join("dev");
    let mut dev = DevProcess::start(exe(), &data_dir, free_port(), Some(&workspace_root()));
    let banner = dev.banner.clone();

    // Something in the log.
    let (ok, out) = run(&banner.publish, &[]);
    assert!(ok, "publish failed: {out}");

    // The command the banner prints.
    let printed = after(&banner.lines, "witnesses cosigned that checkpoint");
    assert!(
        printed.windows(2).any(|w| w == ["--witnesses", "9"]),
        "{printed:?}"
    );
    let (ok, out) = run(&printed, &["--fresh"]);
    assert!(
        ok && out.contains("cosigned by 9 of the 9 known witnesses"),
        "{out}\n{}",
        dev.process.log()
    );

    let verify = after(&banner.lines, "verify the whole record");
    assert_eq!(
        verify.get(2).map(String::as_str),
        Some("verify"),
        "{verify:?}"
    );
    let (ok, out) = run(&verify, &["--fresh", "--witnesses", "9"]);
    assert!(
        ok && out.contains("cosigned by 9 of the 9 known witnesses"),
        "{out}\n{}",
        dev.process.log()
    );
    for department in Department::ALL {
        assert!(
            out.contains(&DevPki::witness_name(department)),
            "{department:?}: {out}"
        );
    }

    // Origin signatures are checked with the development registry: the published licence is signed.
    assert!(
        out.contains("origin signatures: 1 good (emergency+"),
        "{out}"
    );
    // An auditor's registry without emergency's key: the signed record is named, not trusted.
    let registry = std::fs::read_to_string(data_dir.join("pki").join("signing-keys.toml"))
        .expect("signing-keys.toml");
    let without: String = registry
        .split("\n[[")
        .filter(|entry| !entry.starts_with("emergency]]"))
        .collect::<Vec<_>>()
        .join("\n[[");
    let without_path = data.path().join("without-emergency.toml");
    std::fs::write(&without_path, without).expect("write the registry");
    let (ok, out) = run(
        &verify,
        &["--key-registry", without_path.to_str().expect("utf-8 path")],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAILED: leaf 0: signed with key emergency+")
            && out.contains("which the trusted key registry does not list"),
        "{out}"
    );

    // Ten are required of nine: refused, naming the count.
    let (ok, out) = run(&verify, &["--witnesses", "10"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "the checkpoint carries 9 good cosignature(s) of the 9 known witnesses, fewer than the 10 \
             required"
        ),
        "{out}"
    );

    // One known key replaced by another key under the same name: that witness's cosignature is not its.
    let keys_path = data_dir.join("pki").join("witnesses.keys");
    let keys = std::fs::read_to_string(&keys_path).expect("witnesses.keys");
    let first = keys
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a key")
        .to_owned();
    let name = first.split('+').next().expect("a name");
    let impostor = Cosigner::new(name, SigningKey::generate())
        .expect("cosigner")
        .witness_key()
        .to_vkey();
    let replaced: PathBuf = data.path().join("replaced.keys");
    std::fs::write(&replaced, keys.replacen(&first, &impostor, 1)).expect("write keys");
    let replaced_arg = replaced.to_str().expect("utf-8 path");
    let (ok, out) = run(
        &verify,
        &["--witnesses", "9", "--witness-keys", replaced_arg],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("carries 8 good cosignature(s) of the 9 known witnesses"),
        "{out}"
    );
    let (ok, out) = run(
        &verify,
        &["--witnesses", "8", "--witness-keys", replaced_arg],
    );
    assert!(ok && out.contains("cosigned by 8 of the 9"), "{out}");

    // Offline: the exported bundle's checkpoint carries the cosignatures.
    let mut export = verify.clone();
    export[2] = "export".to_owned();
    let bundle = data.path().join("bundle");
    let bundle_arg = bundle.to_str().expect("utf-8 path");
    let (ok, out) = run(&export, &["--out", bundle_arg]);
    assert!(ok, "export failed: {out}");
    let (ok, out) = run(&verify, &["--bundle", bundle_arg, "--witnesses", "9"]);
    assert!(
        ok && out.contains("cosigned by 9 of the 9 known witnesses"),
        "{out}"
    );
    let (ok, out) = run(&verify, &["--bundle", bundle_arg, "--witnesses", "10"]);
    assert!(!ok && out.contains("9 good cosignature(s)"), "{out}");

    // The witnesses' state survives a restart of `hazchem dev`: they go on cosigning the same log.
    dev.restart();
    let verify = after(&dev.banner.lines, "verify the whole record");
    let (ok, out) = run(&verify, &["--fresh", "--witnesses", "9"]);
    assert!(
        ok && out.contains("cosigned by 9 of the 9 known witnesses"),
        "{out}\n{}",
        dev.process.log()
    );
    // The system of record itself: the checkpoints the ledger published into the stream carry them
    // too (one process at a time opens the embedded bus, so `hazchem dev` stops first).
    dev.process.terminate();
    let (ok, out) = run(&verify, &["--stream", "--witnesses", "9"]);
    assert!(
        ok && out.contains("checking the stream itself")
            && out.contains("cosigned by 9 of the 9 known witnesses"),
        "{out}"
    );
    for department in Department::ALL {
        assert!(
            data_dir
                .join("witnesses")
                .join(format!("{}.json", department.code()))
                .is_file(),
            "{department:?}"
        );
    }
}

/// `hazchem serve witness` as a department runs it: its own process, its own key and state, the ledger's
/// key as the one log it knows, HTTPS. It cosigns the log's first checkpoint, refuses a fork of it with
/// 409 (naming its recorded size), and still refuses it after a restart.
#[test]
fn hazchem_serve_witness_cosigns_and_refuses_a_fork_across_restarts() {
    use hazchem_ledger::note::{Checkpoint, NoteSigner};
    use hazchem_ledger::witness::AddCheckpoint;
    use hazchem_tests::process::ChildProcess;
    use hazchem_witness::{CallError, RemoteWitness};

    let dir = tempfile::tempdir().expect("temp dir");
    let pki = DevPki::generate(&dir.path().join("pki")).expect("development PKI");
    let port = free_port();
    let config = dir.path().join("witness.toml");
    let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_owned();
    std::fs::write(
        &config,
        format!(
            "[witness]\nlisten = \"127.0.0.1:{port}\"\nname = \"witness.psb.example/hazchem\"\n\
             signing_key = {:?}\nstate = {:?}\n\n[[witness.logs]]\nkey = {:?}\n\n\
             [witness.tls]\ncert = {:?}\nkey = {:?}\n",
            path(pki.witness_signing_key_path(Department::Psb)),
            path(dir.path().join("state").join("witness.json")),
            path(pki.ledger_public_key_path()),
            path(pki.server_cert_path()),
            path(pki.server_key_path()),
        ),
    )
    .expect("write the configuration");
    let mut witness = ChildProcess::spawn(
        exe(),
        [
            "serve",
            "witness",
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
        None,
        dir.path().join("witness.log"),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    witness.wait_for_port(addr);

    let key = pki
        .witness_cosigner(Department::Psb)
        .expect("cosigner")
        .witness_key();
    let key =
        hazchem_ledger::witness::WitnessKey::new("witness.psb.example/hazchem", *key.public_key())
            .expect("witness key");
    let client = RemoteWitness::new(
        &format!("https://localhost:{port}"),
        key,
        Some(&pki.ca_cert_path()),
    )
    .expect("client");
    let signer = NoteSigner::new(
        hazchem_ledger::DEFAULT_ORIGIN,
        pki.ledger_signing_key().expect("ledger key"),
    )
    .expect("signer");
    let note = |root: u8| {
        signer.sign_checkpoint(&Checkpoint {
            origin: hazchem_ledger::DEFAULT_ORIGIN.into(),
            size: 8,
            root: [root; 32],
        })
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let add = |old: u64, note: String| {
        runtime.block_on(client.add_checkpoint(&AddCheckpoint {
            old,
            proof: vec![],
            note,
        }))
    };
    let lines = add(0, note(1)).unwrap_or_else(|e| panic!("{e}\n{}", witness.log()));
    assert!(
        lines[0].starts_with("\u{2014} witness.psb.example/hazchem "),
        "{lines:?}"
    );
    let fork = |result: Result<Vec<String>, CallError>| {
        matches!(
            result,
            Err(CallError::Refused {
                status: 409,
                recorded: Some(8),
                ..
            })
        )
    };
    assert!(fork(add(8, note(2))));
    assert!(fork(add(0, note(2))));
    witness.restart();
    witness.wait_for_port(addr);
    assert!(fork(add(8, note(2))), "{}", witness.log());
    add(8, note(1)).expect("the same checkpoint again is cosigned again");
    witness.terminate();
}
