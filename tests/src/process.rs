//! The `hazchem` binary as a child process, for process-level tests (the binary's own tests pass
//! `env!("CARGO_BIN_EXE_hazchem")`): start, read its standard output line by line with deadlines,
//! SIGKILL, SIGTERM, restart with the same arguments.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process may take to start, print what is awaited, or stop.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// A port that was free a moment ago on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Removes every `HAZCHEM_*` variable from a command's environment, so that a developer's settings
/// do not leak into a test.
pub fn scrub_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HAZCHEM_") {
            command.env_remove(key);
        }
    }
    command
}

/// A child process with its standard output read line by line (standard error goes to a log file).
#[derive(Debug)]
pub struct ChildProcess {
    exe: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    log: PathBuf,
    child: Option<Child>,
    lines: Option<mpsc::Receiver<String>>,
    /// Every standard output line of the current run, read so far.
    seen: Vec<String>,
}

impl ChildProcess {
    /// Starts `exe args` in `cwd` (or the current directory), standard error appended to `log`.
    pub fn spawn(
        exe: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        cwd: Option<&Path>,
        log: impl Into<PathBuf>,
    ) -> ChildProcess {
        let mut process = ChildProcess {
            exe: exe.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: cwd.map(Path::to_path_buf),
            log: log.into(),
            child: None,
            lines: None,
            seen: Vec::new(),
        };
        process.start();
        process
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the process log");
        let mut command = Command::new(&self.exe);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        scrub_env(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.lines = Some(rx);
        self.seen.clear();
    }

    /// The process id of the current run.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Standard error of every run so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Standard output lines of the current run read so far.
    pub fn stdout_lines(&self) -> &[String] {
        &self.seen
    }

    /// Waits for a standard output line for which `matches` holds and returns it.
    ///
    /// # Panics
    /// If the process exits, or no such line comes within [`PROCESS_DEADLINE`].
    pub fn wait_for_line(&mut self, mut matches: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let lines = self.lines.as_ref().expect("the process was started");
            match lines.recv_timeout(remaining) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{} printed no awaited line within {PROCESS_DEADLINE:?}; stdout:\n{}\nstderr:\n{}",
                    self.exe.display(),
                    self.seen.join("\n"),
                    self.log()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    panic!(
                        "{} ended ({status:?}) before printing the awaited line; stdout:\n{}\nstderr:\n{}",
                        self.exe.display(),
                        self.seen.join("\n"),
                        self.log()
                    )
                }
            }
        }
    }

    /// Waits until something accepts connections on `addr`, while the process lives.
    pub fn wait_for_port(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll the process"))
            {
                panic!(
                    "{} exited with {status}; stderr:\n{}",
                    self.exe.display(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {addr} within {PROCESS_DEADLINE:?}; stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process at once (SIGKILL), like a crash, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.lines = None;
    }

    /// Asks the process to stop (SIGTERM) and waits for it; returns how it exited.
    ///
    /// # Panics
    /// If it is not running, or does not exit within [`PROCESS_DEADLINE`] (it is then killed).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the process is running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("poll the process") {
                self.lines = None;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop within {PROCESS_DEADLINE:?} of SIGTERM; stderr:\n{}",
                    self.exe.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the process again with the same arguments (killing it first if it runs).
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `hazchem dev` prints when it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevBanner {
    /// Every line of the banner.
    pub lines: Vec<String>,
    /// The printed `tail` command, split on whitespace.
    pub tail: Vec<String>,
    /// The printed `publish` command, split on whitespace.
    pub publish: Vec<String>,
    /// The metrics URL (`http://<addr>/metrics`).
    pub metrics: String,
    /// The gateway URL (`https://localhost:<port>`).
    pub gateway: String,
}

/// `hazchem dev` as a child process.
#[derive(Debug)]
pub struct DevProcess {
    /// The process (kill, restart, logs).
    pub process: ChildProcess,
    /// The banner of the current run.
    pub banner: DevBanner,
}

impl DevProcess {
    /// Runs `<exe> dev --data-dir <data_dir> --listen 127.0.0.1:<port> --metrics-listen 127.0.0.1:0`
    /// in `cwd` and waits for its banner. Standard error goes to `<data_dir>.log`.
    pub fn start(exe: &Path, data_dir: &Path, port: u16, cwd: Option<&Path>) -> DevProcess {
        let mut log = data_dir.as_os_str().to_owned();
        log.push(".log");
        let process = ChildProcess::spawn(
            exe,
            [
                OsString::from("dev"),
                "--data-dir".into(),
                data_dir.into(),
                "--listen".into(),
                format!("127.0.0.1:{port}").into(),
                "--metrics-listen".into(),
                "127.0.0.1:0".into(),
            ],
            cwd,
            PathBuf::from(log),
        );
        let mut dev = DevProcess {
            process,
            banner: DevBanner {
                lines: Vec::new(),
                tail: Vec::new(),
                publish: Vec::new(),
                metrics: String::new(),
                gateway: String::new(),
            },
        };
        dev.banner = dev.read_banner();
        dev
    }

    /// Kills the process (SIGKILL), starts it again with the same arguments and waits for its
    /// banner.
    pub fn restart(&mut self) {
        self.process.restart();
        self.banner = self.read_banner();
    }

    fn read_banner(&mut self) -> DevBanner {
        self.process
            .wait_for_line(|l| l.contains("Hazchem Bus is running"));
        self.process
            .wait_for_line(|l| l.trim_start().starts_with("Ctrl-C stops it"));
        let seen = self.process.stdout_lines();
        let start = seen
            .iter()
            .rposition(|l| l.contains("Hazchem Bus is running"))
            .expect("seen above");
        parse_banner(seen[start..].to_vec())
    }
}

/// Reads the commands and addresses out of the lines of a `hazchem dev` banner.
///
/// # Panics
/// If the banner does not have them.
pub fn parse_banner(lines: Vec<String>) -> DevBanner {
    let after = |marker: &str| -> Vec<String> {
        let at = lines
            .iter()
            .position(|l| l.contains(marker))
            .unwrap_or_else(|| {
                panic!(
                    "the banner has no line with {marker:?}:\n{}",
                    lines.join("\n")
                )
            });
        lines
            .get(at + 1)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let field = |name: &str| -> String {
        lines
            .iter()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(name)).then(|| words.next().map(str::to_owned))?
            })
            .unwrap_or_else(|| panic!("the banner has no {name} line:\n{}", lines.join("\n")))
    };
    DevBanner {
        tail: after("follow everything"),
        publish: after("publish a signed"),
        metrics: field("metrics"),
        gateway: field("gateway"),
        lines,
    }
}
