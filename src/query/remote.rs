//! A client of a running server for the CLI: trace by ID (`spanlake trace --server URL`, which asks for
//! the Tempo protobuf body Grafana reads), SQL (`spanlake sql --server URL`) and search (`spanlake search
//! --server URL`, Tempo's JSON).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use super::tempopb;
use crate::ids::{TenantId, TraceId};
use crate::receive::TENANT_HEADER;

/// Why a server could not be asked. `Unreachable` lets the CLI fall back to reading storage itself.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The request could not be built or sent (an HTTP or connection error).
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("{url} answered {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    /// The reply's body broke off or does not decode.
    #[error("{url} sent an unreadable trace: {source}")]
    Unreadable { url: String, source: Box<dyn std::error::Error + Send + Sync> },
}

/// Who a request is sent as: the tenant it names (X-Scope-OrgID) and the bearer token it brings, for a
/// server with auth on; and, for a server with TLS on (an `https://` URL), the CA file that signed its
/// certificate (the system's roots when `None`).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tenant: Option<TenantId>,
    pub token: Option<String>,
    pub ca: Option<std::path::PathBuf>,
}

/// The TLS roots an `https://` server is checked against: the CA file alone when one is given (a
/// deployment's own CA), else the system's.
fn connector(
    ca: Option<&std::path::Path>,
) -> Result<HttpsConnector<HttpConnector>, Box<dyn std::error::Error + Send + Sync>> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in rustls::pki_types::CertificateDer::pem_file_iter(path)? {
                roots.add(certificate?)?;
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder.with_provider_and_native_roots(provider)?,
    };
    Ok(builder.https_or_http().enable_http1().build())
}

/// Sends one request to `url` (a body for POST, none for GET) as `caller`, and returns the status and
/// the whole body.
async fn exchange(
    url: &str,
    caller: &Caller,
    headers: &[(hyper::header::HeaderName, &str)],
    body: Option<Bytes>,
) -> Result<(u16, Bytes), RemoteError> {
    let unreachable =
        |e: Box<dyn std::error::Error + Send + Sync>| RemoteError::Unreachable { url: url.to_owned(), source: e };
    let connector = connector(caller.ca.as_deref()).map_err(unreachable)?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let method = if body.is_some() { hyper::Method::POST } else { hyper::Method::GET };
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    if let Some(tenant) = &caller.tenant {
        request = request.header(TENANT_HEADER, tenant.as_str());
    }
    if let Some(token) = &caller.token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(body.unwrap_or_default())).map_err(|e| unreachable(e.into()))?;
    let response = client.request(request).await.map_err(|e| unreachable(e.into()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| RemoteError::Unreadable { url: url.to_owned(), source: e.into() })?
        .to_bytes();
    Ok((status, body))
}

/// The trace's resource groups from the server at `base_url` (`http://host:3200`); `None` for a 404.
pub async fn fetch_trace(
    base_url: &str,
    caller: &Caller,
    trace_id: &TraceId,
) -> Result<Option<Vec<ResourceSpans>>, RemoteError> {
    let url = format!("{}/api/traces/{trace_id}", base_url.trim_end_matches('/'));
    let (status, body) = exchange(&url, caller, &[(hyper::header::ACCEPT, "application/protobuf")], None).await?;
    match status {
        200 => tempopb::Trace::decode(body)
            .map(|trace| Some(trace.resource_spans))
            .map_err(|e| RemoteError::Unreadable { url, source: e.into() }),
        404 => Ok(None),
        _ => Err(RemoteError::Refused { url, status, body: String::from_utf8_lossy(&body).into_owned() }),
    }
}

/// Runs `sql` on the server at `base_url` (`POST /api/sql?format=…`) and returns the encoded result.
pub async fn fetch_sql(base_url: &str, caller: &Caller, sql: &str, format: &str) -> Result<Bytes, RemoteError> {
    let url = format!("{}/api/sql?format={format}", base_url.trim_end_matches('/'));
    let headers = [(hyper::header::CONTENT_TYPE, "application/sql")];
    let (status, body) = exchange(&url, caller, &headers, Some(Bytes::from(sql.to_owned()))).await?;
    if status == 200 {
        return Ok(body);
    }
    Err(RemoteError::Refused { url, status, body: error_message(&body) })
}

/// The message of an error body: `{"error": "…"}` shows the message alone, anything else as it came.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// Runs a search on the server at `base_url` (`GET /api/search` with Tempo's parameters, given as name
/// and value) and returns its JSON answer as sent.
pub async fn fetch_search(base_url: &str, caller: &Caller, params: &[(&str, String)]) -> Result<Bytes, RemoteError> {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(name, value)| (*name, value.as_str())))
        .finish();
    let url = format!("{}/api/search?{query}", base_url.trim_end_matches('/'));
    let (status, body) = exchange(&url, caller, &[], None).await?;
    if status == 200 {
        return Ok(body);
    }
    Err(RemoteError::Refused { url, status, body: error_message(&body) })
}
