//! The ingesters a querier in its own process reads recent spans from (`--target querier`): found by
//! name (a list, or one DNS name that resolves to all of them, such as a Kubernetes headless Service),
//! resolved again on an interval, and asked together over HTTP/2 for the spans a query needs, which come
//! back as an Arrow IPC stream (`api/internal.rs` serves it).
//!
//! An ingester that cannot be resolved or does not answer in time is named in the answer's failures,
//! so the query side marks its answer partial instead of quietly missing spans. Owns the discovery and
//! the client; calls `ingest` for the request's shape only.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::ids::{BlockId, TenantId};
use crate::ingest::{HeldRows, RecentFilter};
use crate::receive::TENANT_HEADER;

/// The internal endpoint's path on an ingester's HTTP port.
pub const RECENT_PATH: &str = "/internal/v1/recent";

/// The column each answered batch carries last: the block its rows are in, null for the open buffer.
pub const BLOCK_COLUMN: &str = "_spanlake_block";

/// Media type of the answer: an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// How a querier finds and asks the ingesters.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOptions {
    /// `HOST:PORT` of each ingester's HTTP API, or of a name resolving to several.
    pub ingesters: Vec<String>,
    /// How often the names are resolved again.
    pub refresh_interval: Duration,
    /// Longest one ingester may take to answer.
    pub timeout: Duration,
    /// Bearer token sent to ingesters with auth on.
    pub token: Option<String>,
    /// TLS to the ingesters; `None`: clear HTTP/2 (h2c).
    pub tls: Option<PeerTls>,
}

/// How a querier speaks TLS to ingesters that have it on.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerTls {
    /// PEM CA certificates the ingesters' certificates are checked against.
    pub ca_file: std::path::PathBuf,
    /// PEM certificate chain and key shown to ingesters that want a client certificate.
    pub client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Why the querier cannot ask the ingesters at all (found at start).
#[derive(Debug, thiserror::Error)]
#[error("TLS to the ingesters ({}): {reason}", path.display())]
pub struct PeerTlsError {
    path: std::path::PathBuf,
    reason: String,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            ingesters: Vec::new(),
            refresh_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            token: None,
            tls: None,
        }
    }
}

/// Why one ingester's spans are missing from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFailure {
    /// The ingester: its address, or the name that did not resolve.
    pub ingester: String,
    pub reason: String,
}

impl std::fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ingester {}: {}", self.ingester, self.reason)
    }
}

/// What the ingesters answered: their rows, each with its block, and who did not answer.
#[derive(Debug, Default)]
pub struct PeerRows {
    pub rows: Vec<HeldRows>,
    pub failures: Vec<PeerFailure>,
}

impl PeerRows {
    /// The rows not in a block `known` says the querier reads from the store already: those are the
    /// ones to add to the blocks' rows, each span once.
    pub fn not_in(self, known: impl Fn(BlockId) -> bool) -> (Vec<RecordBatch>, Vec<PeerFailure>) {
        let batches = self
            .rows
            .into_iter()
            .filter(|held| held.block.is_none_or(|block| !known(block)))
            .map(|held| held.batch)
            .collect();
        (batches, self.failures)
    }
}

/// The addresses the names resolved to at the last refresh, and the names that resolved to none.
#[derive(Debug, Default)]
struct Resolved {
    addresses: Vec<SocketAddr>,
    unresolved: Vec<PeerFailure>,
}

/// What the ingesters' names resolved to at one lookup, before it is put in use.
#[derive(Debug)]
pub struct Resolution(Resolved);

/// The ingesters, as last resolved; cheap to clone.
#[derive(Clone)]
pub struct Peers {
    options: Arc<PeerOptions>,
    resolved: Arc<RwLock<Resolved>>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https` with TLS to the ingesters, else `http`.
    scheme: &'static str,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("ingesters", &self.options.ingesters).finish()
    }
}

impl Peers {
    /// The ingesters `options` names, resolved once now (a name that does not resolve yet is a failure
    /// of every answer until it does).
    pub async fn start(options: PeerOptions) -> Result<Self, PeerTlsError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.timeout));
        connector.enforce_http(false);
        let tls = client_tls(options.tls.as_ref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http2()
            .wrap_connector(connector);
        // HTTP/2 only: with prior knowledge in clear (the ingesters' HTTP port speaks h2c), by ALPN over
        // TLS; the fetches of one query to one ingester share a connection.
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let peers = Self { options: Arc::new(options), resolved: Arc::default(), client, scheme };
        peers.resolve().await;
        Ok(peers)
    }

    /// The addresses in use and the names that resolved to none.
    pub fn addresses(&self) -> (Vec<SocketAddr>, Vec<PeerFailure>) {
        let resolved = self.resolved.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (resolved.addresses.clone(), resolved.unresolved.clone())
    }

    /// Resolves every name again: a Kubernetes headless Service's name gives the ingesters running now.
    pub async fn resolve(&self) {
        let found = self.look_up().await;
        self.install(found);
    }

    /// What the names resolve to now (not in use until [`install`](Self::install)ed).
    pub async fn look_up(&self) -> Resolution {
        let mut resolved = Resolved::default();
        for name in &self.options.ingesters {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(found) => {
                    let before = resolved.addresses.len();
                    resolved.addresses.extend(found);
                    if resolved.addresses.len() == before {
                        resolved
                            .unresolved
                            .push(PeerFailure { ingester: name.clone(), reason: "resolves to no address".to_owned() });
                    }
                }
                Err(error) => resolved
                    .unresolved
                    .push(PeerFailure { ingester: name.clone(), reason: format!("cannot be resolved: {error}") }),
            }
        }
        resolved.addresses.sort_unstable();
        resolved.addresses.dedup();
        Resolution(resolved)
    }

    /// Whether an ingester in use now is missing from `next`: one that stopped (after flushing its
    /// spans into blocks, when it stopped gracefully).
    pub fn loses_an_ingester(&self, next: &Resolution) -> bool {
        let current = self.resolved.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        current.addresses.iter().any(|address| !next.0.addresses.contains(address))
    }

    /// Puts a resolution in use.
    pub fn install(&self, next: Resolution) {
        let Resolution(resolved) = next;
        let mut current = self.resolved.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.addresses != resolved.addresses {
            tracing::info!(ingesters = ?resolved.addresses, "ingesters found");
        }
        for failure in &resolved.unresolved {
            tracing::warn!(%failure, "an ingester name does not resolve; answers are partial until it does");
        }
        *current = resolved;
    }

    /// How often the names are resolved again.
    pub fn refresh_interval(&self) -> Duration {
        self.options.refresh_interval
    }

    /// Every ingester's spans of `tenant` that `filter` keeps, asked at once; an ingester that fails or
    /// takes longer than the timeout is a failure of the answer.
    pub async fn recent(&self, tenant: &TenantId, filter: &RecentFilter) -> PeerRows {
        let (addresses, unresolved) = self.addresses();
        let body = match serde_json::to_vec(filter) {
            Ok(body) => Bytes::from(body),
            // A filter of IDs, numbers and names always serialises; kept as a failure, not a panic.
            Err(error) => {
                let failure = PeerFailure { ingester: "every ingester".to_owned(), reason: error.to_string() };
                return PeerRows { rows: Vec::new(), failures: vec![failure] };
            }
        };
        let asked = addresses.iter().map(|address| {
            let body = body.clone();
            async move {
                let answer = tokio::time::timeout(self.options.timeout, self.ask(*address, tenant, body)).await;
                let failure = |reason: String| PeerFailure { ingester: address.to_string(), reason };
                match answer {
                    Ok(Ok(rows)) => Ok(rows),
                    Ok(Err(reason)) => Err(failure(reason)),
                    Err(_) => Err(failure(format!("no answer within {:?}", self.options.timeout))),
                }
            }
        });
        let mut answer = PeerRows { rows: Vec::new(), failures: unresolved };
        for outcome in futures::future::join_all(asked).await {
            match outcome {
                Ok(rows) => answer.rows.extend(rows),
                Err(failure) => {
                    tracing::warn!(%failure, "an ingester's recent spans are missing from an answer");
                    metrics::counter!(crate::telemetry::PEER_FAILURES).increment(1);
                    answer.failures.push(failure);
                }
            }
        }
        answer
    }

    /// One ingester's answer, decoded.
    async fn ask(&self, address: SocketAddr, tenant: &TenantId, body: Bytes) -> Result<Vec<HeldRows>, String> {
        let mut request = hyper::Request::post(format!("{}://{address}{RECENT_PATH}", self.scheme))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, ARROW_STREAM)
            .header(TENANT_HEADER, tenant.as_str());
        if let Some(token) = &self.options.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("cannot reach it: {}", crate::telemetry::chain(&e)))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| format!("its answer broke off: {e}"))?.to_bytes();
        if !status.is_success() {
            return Err(format!("answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        decode(body).map_err(|e| format!("its answer does not decode: {e}"))
    }
}

/// The TLS client configuration: the CA file's roots and the client certificate when given; without TLS
/// an empty one, never used (every URL is `http://`).
fn client_tls(tls: Option<&PeerTls>) -> Result<rustls::ClientConfig, PeerTlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerTlsError { path: Default::default(), reason: e.to_string() })?;
    let mut roots = rustls::RootCertStore::empty();
    let Some(tls) = tls else { return Ok(builder.with_root_certificates(roots).with_no_client_auth()) };
    let failed = |path: &std::path::Path, reason: String| PeerTlsError { path: path.to_owned(), reason };
    for certificate in CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| failed(&tls.ca_file, e.to_string()))? {
        let certificate = certificate.map_err(|e| failed(&tls.ca_file, e.to_string()))?;
        roots.add(certificate).map_err(|e| failed(&tls.ca_file, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed(&tls.ca_file, "no CA certificate in it".to_owned()));
    }
    let builder = builder.with_root_certificates(roots);
    // ALPN (h2) is set by the connector builder (`enable_http2`).
    let config = match &tls.client_certificate {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|e| failed(cert_file, e.to_string()))?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| failed(key_file, e.to_string()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| failed(cert_file, e.to_string()))?
        }
    };
    Ok(config)
}

/// The rows of an answer: each batch with the block of its rows (the last column, taken off).
pub fn decode(body: Bytes) -> Result<Vec<HeldRows>, arrow::error::ArrowError> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let last = batch.num_columns().checked_sub(1).filter(|last| batch.schema().field(*last).name() == BLOCK_COLUMN);
        let Some(last) = last else {
            return Err(arrow::error::ArrowError::SchemaError(format!("no {BLOCK_COLUMN} column")));
        };
        let blocks = batch.column(last).as_fixed_size_binary_opt().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("{BLOCK_COLUMN} is not a 16-byte binary column"))
        })?;
        // An ingester sends each batch from one place: the block of its first row is every row's.
        let block = match blocks.is_empty() || blocks.is_null(0) {
            true => None,
            false => Some(BlockId::from_u128(u128::from_be_bytes(
                blocks.value(0).try_into().map_err(|_| arrow::error::ArrowError::SchemaError("block ID".into()))?,
            ))),
        };
        let columns: Vec<usize> = (0..last).collect();
        rows.push(HeldRows { block, batch: batch.project(&columns)? });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_to_every_address_and_an_unresolvable_one_is_a_failure_of_every_answer() {
        let options = PeerOptions {
            ingesters: vec!["127.0.0.1:3200".into(), "127.0.0.1:3200".into(), "no-such-ingester.invalid:3200".into()],
            ..Default::default()
        };
        let peers = Peers::start(options).await.unwrap();
        let (addresses, unresolved) = peers.addresses();
        assert_eq!(addresses, ["127.0.0.1:3200".parse::<SocketAddr>().unwrap()], "one address, asked once");
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].ingester, "no-such-ingester.invalid:3200");
        let answer = peers.recent(&TenantId::single_tenant(), &RecentFilter::default()).await;
        assert!(answer.failures.iter().any(|f| f.ingester == "no-such-ingester.invalid:3200"));
    }

    #[test]
    fn rows_of_a_block_the_querier_reads_from_the_store_are_left_out() {
        let batch = RecordBatch::new_empty(crate::spans::schema::span_schema());
        let (known, unknown) = (BlockId::new_random(), BlockId::new_random());
        let rows = PeerRows {
            rows: [None, Some(known), Some(unknown)]
                .into_iter()
                .map(|block| HeldRows { block, batch: batch.clone() })
                .collect(),
            failures: Vec::new(),
        };
        let (kept, failures) = rows.not_in(|block| block == known);
        assert_eq!((kept.len(), failures.len()), (2, 0), "the open buffer's rows and the unknown block's");
    }
}
