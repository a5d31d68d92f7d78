//! `spanlake` processes started by tests, killed when the test lets go of them, on success or panic
//! alike: a failed assertion must fail the test, not leave a server holding its ports and the test's
//! output open until CI times out.

use std::io::BufReader;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::server::{StartupLog, read_until_ready};

/// A child process that is killed (SIGKILL) and reaped when dropped, unless it has exited already.
#[derive(Debug)]
pub struct KilledOnDrop(Child);

impl KilledOnDrop {
    /// Spawns `command`; panics if it cannot start.
    pub fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("the process starts"))
    }

    /// Sends SIGTERM (graceful stop) and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered to {}", self.0.id());
        self.0.wait().expect("wait for the process")
    }

    /// Sends SIGKILL (a crash) and waits for the exit.
    pub fn kill_9(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("wait for the process");
    }
}

impl Deref for KilledOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KilledOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `spanlake serve` process that said "ready", with the addresses it bound.
pub struct Serving {
    pub process: KilledOnDrop,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// Its log up to and including "ready".
    pub lines: Vec<String>,
}

/// Longest a test server may take to say "ready" (a WAL replay included) before the test gives up on it.
const READY_DEADLINE: Duration = Duration::from_secs(120);

/// Spawns `command` (a `spanlake serve …`) with its log on a pipe, reads the log until "ready", then
/// drains the rest on a thread so the server never blocks on a full pipe. The log level is `info`,
/// where the addresses are logged. The process is killed if the start fails, and if it hangs without
/// saying "ready" for [`READY_DEADLINE`] (its log then ends, and the read fails the test).
pub fn serve(command: &mut Command) -> Serving {
    let (process, StartupLog { http, grpc, lines }) = spawn_until_ready(command);
    Serving {
        process,
        http: http.expect("the query address is logged before ready"),
        grpc: grpc.expect("the OTLP/gRPC address is logged before ready"),
        lines,
    }
}

/// A `spanlake serve` process without receivers (`--target querier` or `compactor`) that said "ready".
pub struct HttpServing {
    pub process: KilledOnDrop,
    /// Its HTTP API.
    pub http: SocketAddr,
}

/// [`serve`] for a process that opens no OTLP port.
pub fn serve_http(command: &mut Command) -> HttpServing {
    let (process, log) = spawn_until_ready(command);
    HttpServing { process, http: log.http.expect("the HTTP address is logged before ready") }
}

/// Spawns `command` and reads its log until "ready" (see [`serve`]).
fn spawn_until_ready(command: &mut Command) -> (KilledOnDrop, StartupLog) {
    let mut process = KilledOnDrop::spawn(command.env("SPANLAKE_LOG", "info").stderr(Stdio::piped()));
    let mut log = BufReader::new(process.stderr.take().expect("stderr is piped"));
    let (started, watchdog) = (mpsc::channel::<()>(), process.id());
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = started.1.recv_timeout(READY_DEADLINE) {
            let _ = Command::new("kill").args(["-KILL", &watchdog.to_string()]).status();
        }
    });
    let started_log = read_until_ready(&mut log);
    let _ = started.0.send(());
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (process, started_log)
}
