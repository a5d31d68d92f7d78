//! TLS on every port (rustls): the certificate and key files (`tls_cert_file`, `tls_key_file`), and,
//! with `tls_client_ca_file`, client certificates that CA signed, required on every connection. The
//! files are read again when they change (a renewed certificate needs no restart; a pair that does not
//! load is logged and the one in force stays), and new connections get the new configuration.
//!
//! Each port offers the protocols it speaks by ALPN: the query port HTTP/2 and HTTP/1.1 (Grafana's
//! streaming search and the HTTP API), OTLP/HTTP HTTP/1.1, OTLP/gRPC HTTP/2. The handshake must finish
//! within the read timeout, in its own task, so a client that stalls in it holds only its own connection.
//!
//! Owns loading the files, the rustls configuration and the handshake. Called by `connections` and the
//! server's start.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::reload::Reloadable;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {} holds no PEM {expected}", path.display())]
    Pem { what: &'static str, path: PathBuf, expected: &'static str },
    #[error("the certificate and key do not make a TLS configuration")]
    Config(#[source] rustls::Error),
    #[error("the client CA file does not make a client certificate verifier")]
    ClientCa(#[source] rustls::server::VerifierBuilderError),
    #[error("tls_cert_file and tls_key_file go together: set both or neither (tls_client_ca_file needs both)")]
    Incomplete,
}

/// Where the TLS files are (`None` from [`TlsFiles::from_settings`]: TLS off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must be signed by a CA in this file.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files the three settings name; an incomplete set is refused rather than served in clear.
    pub fn from_settings(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Ok(Some(Self { cert: cert.to_owned(), key: key.to_owned(), client_ca: client_ca.map(Path::to_owned) }))
            }
            (None, None) if client_ca.is_none() => Ok(None),
            _ => Err(TlsError::Incomplete),
        }
    }

    /// Every file, for the reloader to watch.
    fn paths(&self) -> Vec<PathBuf> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().cloned().collect()
    }
}

/// Which protocols a port offers in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/2 and HTTP/1.1 (the query port).
    Http2AndHttp1,
    /// HTTP/1.1 (OTLP/HTTP, the compactor's probes).
    Http1,
    /// HTTP/2 (OTLP/gRPC).
    Http2,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Self::Http1 => vec![b"http/1.1".to_vec()],
            Self::Http2 => vec![b"h2".to_vec()],
        }
    }
}

/// One loaded version of the files: a rustls configuration per [`Alpn`].
struct Loaded {
    both: Arc<rustls::ServerConfig>,
    http1: Arc<rustls::ServerConfig>,
    http2: Arc<rustls::ServerConfig>,
}

impl Loaded {
    fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        // A file that cannot be opened is named as such, not as one without PEM in it.
        let named = [("certificate file", Some(&files.cert)), ("key file", Some(&files.key))];
        for (what, path) in named.into_iter().chain([("client CA file", files.client_ca.as_ref())]) {
            if let Some(path) = path {
                std::fs::File::open(path).map_err(|source| TlsError::Read { what, path: path.clone(), source })?;
            }
        }
        let pem = |what, path: &Path, expected| TlsError::Pem { what, path: path.to_owned(), expected };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|_| pem("certificate file", &files.cert, "certificate"))?
            .collect::<Result<_, _>>()
            .map_err(|_| pem("certificate file", &files.cert, "certificate"))?;
        if chain.is_empty() {
            return Err(pem("certificate file", &files.cert, "certificate"));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| pem("key file", &files.key, "private key"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match &files.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certificates = CertificateDer::pem_file_iter(path)
                    .map_err(|_| pem("client CA file", path, "certificate"))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| pem("client CA file", path, "certificate"))?;
                let (added, _) = roots.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(pem("client CA file", path, "CA certificate"));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(TlsError::ClientCa)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let base = builder.with_single_cert(chain, key).map_err(TlsError::Config)?;
        let with = |alpn: Alpn| {
            let mut config = base.clone();
            config.alpn_protocols = alpn.protocols();
            Arc::new(config)
        };
        Ok(Self { both: with(Alpn::Http2AndHttp1), http1: with(Alpn::Http1), http2: with(Alpn::Http2) })
    }
}

/// The TLS configuration in force, shared by every port; the reloader swaps in a new one.
#[derive(Clone)]
pub struct Tls {
    loaded: Reloadable<Loaded>,
    files: TlsFiles,
}

impl Tls {
    /// Loads the files at start-up; files that do not load stop the start.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = Loaded::load(&files)?;
        tracing::info!(
            client_certificates = files.client_ca.is_some(),
            "TLS on every port; the files are re-read when they change"
        );
        Ok(Self { loaded: Reloadable::new(loaded), files })
    }

    fn acceptor(&self, alpn: Alpn) -> tokio_rustls::TlsAcceptor {
        let loaded = self.loaded.get();
        let config = match alpn {
            Alpn::Http2AndHttp1 => loaded.both.clone(),
            Alpn::Http1 => loaded.http1.clone(),
            Alpn::Http2 => loaded.http2.clone(),
        };
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Completes the server side of a handshake within `timeout`; `None` (logged) when the client fails
    /// it or takes too long.
    pub async fn handshake(&self, stream: TcpStream, alpn: Alpn, timeout: Duration) -> Option<MaybeTls> {
        let peer = stream.peer_addr().ok();
        match tokio::time::timeout(timeout, self.acceptor(alpn).accept(stream)).await {
            Ok(Ok(stream)) => Some(MaybeTls::Tls(Box::new(stream))),
            Ok(Err(error)) => {
                tracing::info!(?peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!(?peer, "closed a connection that did not finish its TLS handshake within {timeout:?}");
                None
            }
        }
    }

    /// Re-reads the files when they change, until `stop`: changed files that load replace the
    /// configuration for new connections, ones that do not are logged and counted. Write the key before
    /// the certificate (or rename both into place): a new certificate with the old key does not load.
    pub fn spawn_reloader(&self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let files = self.files.clone();
        let load = move || Loaded::load(&files);
        crate::reload::spawn_watch(
            self.loaded.clone(),
            self.files.paths(),
            "TLS files",
            crate::telemetry::TLS_RELOADS,
            load,
            stop,
        )
    }
}

/// An accepted connection, in clear or after its TLS handshake: one type for every port's serving code.
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for MaybeTls {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Self::Plain(stream) => stream.connect_info(),
            Self::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}
