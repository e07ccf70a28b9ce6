//! The README's path, as a process: `hazchem dev` (run from the workspace root, as the README says)
//! prints how to publish an event and follow the record; the commands it prints, run exactly as
//! printed, publish an event and show it in `hazchem tail`; the credit, enforcement, warnings and audit
//! commands it prints answer (a warning raised by a published sale is listed, acknowledged and closed
//! with the printed options); the metrics endpoint counts it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hazchem_tests::fixtures::workspace_root;
use hazchem_tests::process::{ChildProcess, DevProcess, free_port, scrub_env};
use serde_json::Value;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hazchem"))
}

/// A printed command with its executable resolved: as printed if that file exists (it is the path
/// `hazchem dev` was started with), otherwise the binary under test.
fn resolve(printed: &[String]) -> (PathBuf, Vec<String>) {
    assert!(!printed.is_empty(), "a command is printed");
    let program = PathBuf::from(&printed[0]);
    let program = if program.is_file() {
        program
    } else {
        exe().to_path_buf()
    };
    (program, printed[1..].to_vec())
}

/// Runs a printed command to completion in the workspace root.
fn run(printed: &[String]) -> std::process::Output {
    let (program, args) = resolve(printed);
    let mut command = Command::new(program);
    command.args(args).current_dir(workspace_root());
    scrub_env(&mut command).output().expect("run the command")
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect()
}

/// Runs a printed command that must succeed; its JSON lines.
fn run_ok(printed: &[String]) -> Vec<Value> {
    let output = run(printed);
    assert!(
        output.status.success(),
        "{printed:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    json_lines(&output.stdout)
}

/// The command the banner prints in parentheses after `marker`, split on whitespace.
fn printed_in(lines: &[String], marker: &str) -> Vec<String> {
    let line = lines
        .iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in the banner:\n{}", lines.join("\n")));
    let (_, rest) = line.split_once(marker).expect("found");
    let (command, _) = rest.split_once(')').expect("a closing parenthesis");
    command.split_whitespace().map(str::to_owned).collect()
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

/// `GET <url>` over HTTP/1.1 (the metrics endpoint); the body.
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_once('/').expect("a path");
    let mut stream = TcpStream::connect(authority).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the counter sample named `name` with all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (label_text, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[test]
fn the_commands_hazchem_dev_prints_publish_and_tail_an_event() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().join("dev");
    let port = free_port();
    let root = workspace_root();
    let mut dev = DevProcess::start(exe(), &data_dir, port, Some(&root));
    let banner = dev.banner.clone();
    assert_eq!(
        banner.gateway,
        format!("https://localhost:{port}"),
        "{banner:#?}"
    );

    // The two commands, as printed.
    let (tail_program, tail_args) = resolve(&banner.tail);
    assert_eq!(
        tail_args.first().map(String::as_str),
        Some("tail"),
        "{banner:#?}"
    );
    assert_eq!(
        banner.publish.get(1).map(String::as_str),
        Some("publish"),
        "{banner:#?}"
    );
    assert_eq!(
        tail_program,
        exe(),
        "the banner names the executable that runs"
    );
    let fixture = banner.publish.last().expect("a file to publish");
    assert!(
        root.join(fixture).is_file(),
        "the printed file exists relative to the workspace root: {fixture}"
    );

    // Follow the record in the background, like a second terminal.
    let mut tail = ChildProcess::spawn(
        tail_program,
        tail_args,
        Some(&root),
        data.path().join("tail.log"),
    );

    let published = run(&banner.publish);
    assert!(
        published.status.success(),
        "publish failed: {}\n{}",
        String::from_utf8_lossy(&published.stdout),
        String::from_utf8_lossy(&published.stderr)
    );
    let lines = json_lines(&published.stdout);
    assert_eq!(lines.len(), 1, "one line per event: {lines:?}");
    let accepted = &lines[0];
    let id = accepted["eventId"].as_str().expect("eventId").to_owned();
    assert_eq!(id, "fx-licence-issued-0001");
    assert_eq!(accepted["sequence"], 1);
    assert_eq!(accepted["duplicate"], false);

    // The tail shows it.
    let line = tail.wait_for_line(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"]["id"] == id.as_str())
    });
    let delivered: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(delivered["sequence"], 1);
    assert_eq!(
        delivered["subject"],
        format!("hazchem.ev.emergency.licence_issued.{id}")
    );
    assert_eq!(delivered["event"]["type"], "cn.hazchem.v1.licence_issued");
    assert_eq!(
        delivered["record"]["publisher"]["department"],
        "DEPARTMENT_EMERGENCY"
    );
    // Signed with the department's key, named by its key id (`<code>+<C2SP key id>`), as the registry
    // lists it.
    let key_id = delivered["record"]["signature"]["keyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let registry = hazchem_pki::DevPki::load(&data_dir.join("pki"))
        .and_then(|pki| pki.key_registry())
        .expect("the development key registry");
    assert_eq!(
        registry.keys(hazchem_domain::Department::Emergency)[0].id(),
        key_id,
        "--sign signs with the department's key: {delivered}"
    );

    // Publishing it again answers duplicate with the original sequence (README).
    let again = run(&banner.publish);
    assert!(again.status.success());
    let again = &json_lines(&again.stdout)[0];
    assert_eq!(
        (again["sequence"].as_u64(), again["duplicate"].as_bool()),
        (Some(1), Some(true))
    );

    // The README's rejection example: psb may not issue waybills.
    let mut rejected = banner.publish.clone();
    let at = rejected.iter().position(|a| a == "--as").expect("--as");
    rejected[at + 1] = "psb".into();
    rejected.retain(|a| a != "--sign");
    *rejected.last_mut().unwrap() = "tests/fixtures/events/waybill_issued.json".into();
    let refused = run(&rejected);
    assert!(!refused.status.success(), "a rejection fails the command");
    let refusal = &json_lines(&refused.stdout)[0];
    assert_eq!(refusal["eventId"], "fx-waybill-issued-0001");
    assert_eq!(refusal["error"]["code"], "PermissionDenied", "{refusal}");
    // The fixture is in transport's name, so what psb is told first is that it publishes only in
    // its own name.
    assert_eq!(
        refusal["error"]["errorInfo"]["reason"],
        "DEPARTMENT_MISMATCH"
    );

    // The other commands the banner prints work as printed: the credit registry has nothing on the
    // licence holder, there are no joint tasks, and the whole record verifies against the ledger's
    // signed checkpoint.
    let holder = "91320623MA1P8RK2X8";
    let mut check = printed_in(&banner.lines, "(credit registry: ");
    for arg in &mut check {
        if arg == "<uscc>" {
            holder.clone_into(arg);
        }
    }
    check.push("--json".into());
    // No active listing and no measure: the empty answer.
    assert_eq!(run_ok(&check), [serde_json::json!({})]);
    let mut list = printed_in(&banner.lines, "(joint tasks: ");
    list.push("--json".into());
    run_ok(&list);

    // The warnings line runs as printed: nothing is raised by a licence decision. A highly toxic sale
    // without a purchase permit, published the way the banner says, raises a warning it lists; the
    // addressed departments acknowledge and close it with the same options.
    let mut warnings = printed_in(&banner.lines, "(warnings: ");
    warnings.push("--json".into());
    assert_eq!(run_ok(&warnings), Vec::<Value>::new(), "no warning yet");
    let mut sale: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/events/sale_recorded.json"))
            .expect("the sale fixture"),
    )
    .expect("JSON");
    sale["id"] = "smoke-hcn-sale".into();
    sale["saleRecorded"]["chemical"] = serde_json::json!({"cas": "74-90-8", "name": "氰化氢"});
    let sale_file = data.path().join("hcn-sale.json");
    std::fs::write(&sale_file, sale.to_string()).expect("write the sale");
    let mut publish_sale = banner.publish.clone();
    *publish_sale.last_mut().unwrap() = sale_file.display().to_string();
    run_ok(&publish_sale);
    let listed = (0..200)
        .find_map(|_| {
            let listed = run_ok(&warnings);
            if listed.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                None
            } else {
                Some(listed)
            }
        })
        .expect("the warning is listed within 20 s");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let warning = &listed[0];
    assert_eq!(warning["ruleId"], "sale.highly_toxic_without_permit");
    assert_eq!(warning["level"], "WARNING_LEVEL_ORANGE");
    assert_eq!(warning["state"], "WARNING_STATE_OPEN");
    let id = warning["warningId"].as_str().expect("warningId").to_owned();
    // `warnings <verb> <id> ... --as <department>`, from the printed line.
    let command = |verb: &str, department: &str, extra: &[&str]| {
        let mut c = warnings.clone();
        let at = c.iter().position(|a| a == "list").expect("list");
        c[at] = verb.to_owned();
        c.insert(at + 1, id.clone());
        let as_at = c.iter().position(|a| a == "--as").expect("--as");
        department.clone_into(&mut c[as_at + 1]);
        c.extend(extra.iter().map(|a| (*a).to_owned()));
        c
    };
    let refused = run(&command("ack", "fire", &[]));
    assert!(!refused.status.success(), "fire is not addressed");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("WARNING_NOT_ADDRESSED"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let acknowledged = run_ok(&command("ack", "psb", &["--note", "已核查"]));
    assert_eq!(
        acknowledged[0]["acknowledgedBy"],
        serde_json::json!(["DEPARTMENT_PSB"])
    );
    let closed = run_ok(&command("close", "emergency", &["--reason", "已立案调查"]));
    assert_eq!(closed[0]["state"], "WARNING_STATE_CLOSED");
    let shown = run_ok(&command("show", "fire", &[]));
    let history: Vec<&str> = shown[0]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["eventType"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        history,
        ["warning_raised", "warning_acknowledged", "warning_closed"]
    );
    let verify = after(&banner.lines, "verify the whole record");
    let verified = run(&verify);
    assert!(
        verified.status.success(),
        "audit verify failed: {}\n{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // The metrics endpoint counts what happened.
    let metrics = http_get(&banner.metrics);
    let accepted_total = "hazchem_gateway_events_accepted_total";
    assert_eq!(
        sample(
            &metrics,
            accepted_total,
            &[
                ("publisher", "emergency"),
                ("event_type", "licence_issued"),
                ("duplicate", "false")
            ]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            accepted_total,
            &[
                ("publisher", "emergency"),
                ("event_type", "licence_issued"),
                ("duplicate", "true")
            ]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "hazchem_gateway_events_rejected_total",
            &[("publisher", "psb"), ("reason", "DEPARTMENT_MISMATCH")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("hazchem_gateway_subscriptions"),
        "{metrics}"
    );
    // Every service, not only the gateway: each projection's position and apply latency, and the
    // calls each server answered (the audit verify above called the ledger's Replay).
    for projection in ["ledger", "credit", "enforcement"] {
        let position = sample(
            &metrics,
            "hazchem_projection_position",
            &[("projection", projection)],
        );
        assert!(
            position.is_some_and(|p| p >= 1.0),
            "{projection}: {metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "hazchem_projection_apply_seconds_count{{projection=\"{projection}\"}}"
            )),
            "{projection}: {metrics}"
        );
    }
    let replays = sample(
        &metrics,
        "hazchem_grpc_calls_total",
        &[
            ("server", "audit service"),
            ("method", "/hazchem.v1.AuditService/Replay"),
            ("code", "OK"),
        ],
    );
    assert!(replays.is_some_and(|n| n >= 1.0), "{metrics}");

    // Ctrl-C (SIGTERM here) stops it cleanly, even with a subscriber still following.
    let status = dev.process.terminate();
    assert!(
        status.success(),
        "hazchem dev exits cleanly: {status}\n{}",
        dev.process.log()
    );
    // Its log, written to a file, is plain text: no terminal colour codes.
    let log = dev.process.log();
    assert!(log.contains("serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log}"
    );
    tail.kill();
}
