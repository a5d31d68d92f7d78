//! A real S3-compatible server for the tests: moto's server, started once per test binary on a free
//! loopback port and stopped when the test process exits, plus one fresh bucket per test. Bucket creation and readiness use unsigned requests, which moto accepts.
//!
//! The server is never skipped: if it cannot start, the tests that need it fail with the reason.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use spanlake::storage::Storage;

use super::http::request;
use super::tools::tool;

/// The running server. Its child is a shell that kills moto when our end of its stdin closes, which
/// happens when the test process exits for any reason.
pub struct S3Server {
    pub addr: SocketAddr,
    _guard: Mutex<Child>,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();
static BUCKETS: AtomicU32 = AtomicU32::new(0);

impl S3Server {
    /// The shared server of this test binary.
    pub fn shared() -> &'static S3Server {
        SERVER.get_or_init(|| {
            let mut last_error = String::new();
            for _ in 0..3 {
                match Self::start() {
                    Ok(server) => return server,
                    Err(error) => last_error = error,
                }
            }
            panic!("the S3 test server (moto) did not start: {last_error}");
        })
    }

    fn start() -> Result<S3Server, String> {
        let moto = tool("moto_server");
        let port = free_port();
        let script = format!(
            "\"{}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & server=$!; cat >/dev/null; kill $server",
            moto.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn moto_server: {e}"))?;
        let server = S3Server { addr: SocketAddr::from(([127, 0, 0, 1], port)), _guard: Mutex::new(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if request(server.addr, "GET", "/").is_ok_and(|(status, _)| status < 500) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("nothing answered on {} within 30 s", server.addr))
    }

    /// The endpoint URL clients use.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a new, empty bucket and returns its name.
    pub fn new_bucket(&self) -> String {
        let bucket = format!("spanlake-test-{}-{}", std::process::id(), BUCKETS.fetch_add(1, Ordering::Relaxed));
        let (status, _) = request(self.addr, "PUT", &format!("/{bucket}")).expect("create bucket request");
        assert_eq!(status, 200, "creating bucket {bucket}");
        bucket
    }

    /// `object_store` options that point an S3 client at this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", "test".into()),
            ("aws_secret_access_key", "test".into()),
            ("aws_region", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Storage on a fresh bucket of this server, under `prefix`.
    pub fn new_storage(&self, prefix: &str) -> Storage {
        let url = format!("s3://{}/{prefix}", self.new_bucket());
        Storage::open_with_options(&url, &self.options()).expect("open S3 storage")
    }
}

fn free_port() -> u16 {
    super::free_addr().port()
}
