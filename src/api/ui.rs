//! The web UI (`GET /`): a page of plain JavaScript modules and CSS, embedded in the binary at build time
//! (no npm, no network), that calls only the public endpoints of the query port: search and tags, trace
//! by ID, SQL, build information and `/metrics`. The page's own routes (`/search`, `/trace/{id}`, `/sql`,
//! `/status`) all answer the same shell so a shared URL opens where it points.
//!
//! Owns the asset table and how assets are sent (content type, gzip, caching, a content security policy
//! that keeps the page from loading anything from elsewhere). Calls nothing else.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file: its name under `/ui/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media_type:expr) => {
        Asset { name: $name, media_type: $media_type, bytes: include_bytes!(concat!("ui/", $name)) }
    };
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads. A new module must be listed here, or the browser gets a 404 for it (the
/// `every_module_the_page_imports_is_served` test reads the imports to catch that).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", CSS),
    asset!("search.css", CSS),
    asset!("sql.css", CSS),
    asset!("status.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("chart.js", JS),
    asset!("search.js", JS),
    asset!("scatter.js", JS),
    asset!("traceql.js", JS),
    asset!("trace.js", JS),
    asset!("tracemodel.js", JS),
    asset!("sql.js", JS),
    asset!("status.js", JS),
];

/// What the page may load and talk to: itself only. Inline scripts are refused too, so an attribute value
/// that ever reached the page as markup could not run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

/// The UI's routes on the query port.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(shell))
        .route("/search", get(shell))
        .route("/sql", get(shell))
        .route("/status", get(shell))
        .route("/trace/{trace_id}", get(shell))
        .route("/ui/{name}", get(asset))
}

async fn shell(headers: HeaderMap) -> Response {
    send("index.html", &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    send(&name, &headers)
}

/// The asset `name`, gzip'd when the browser takes it, with an ETag so a reload costs a 304.
fn send(name: &str, headers: &HeaderMap) -> Response {
    #[cfg(debug_assertions)]
    if let Some(response) = from_dev_dir(name) {
        return response;
    }
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return super::query::error_response(StatusCode::NOT_FOUND, &format!("no such UI file: {name}"));
    };
    let asset = &ASSETS[index];
    let prepared = &prepared()[index];
    let mut response =
        if headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == prepared.etag.as_bytes()) {
            StatusCode::NOT_MODIFIED.into_response()
        } else if super::gzip::accepted(headers) {
            let mut response = prepared.gzip.clone().into_response();
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        } else {
            asset.bytes.into_response()
        };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Revalidate every time: the files change with the binary, and a 304 is cheap.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(etag) = HeaderValue::from_str(&prepared.etag) {
        out.insert(header::ETAG, etag);
    }
    response
}

/// Debug builds only: with `SPANLAKE_UI_DEV_DIR` set, the files are read from that folder on every request,
/// so someone working on the page sees an edit on reload without rebuilding. Release builds always serve
/// the embedded files.
#[cfg(debug_assertions)]
fn from_dev_dir(name: &str) -> Option<Response> {
    let dir = std::env::var_os("SPANLAKE_UI_DEV_DIR")?;
    let asset = ASSETS.iter().find(|asset| asset.name == name)?;
    let bytes = std::fs::read(std::path::Path::new(&dir).join(asset.name)).ok()?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    Some(response)
}

/// An asset's gzip'd bytes and entity tag, made once on first use.
struct Prepared {
    gzip: Vec<u8>,
    etag: String,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| Prepared { gzip: super::gzip::compress(asset.bytes, 9), etag: etag(asset.bytes) })
            .collect()
    })
}

/// FNV-1a over the bytes: tells one build's file from another's, which is all an ETag needs here.
fn etag(bytes: &[u8]) -> String {
    let hash = bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|asset| asset.name).collect();
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.bytes).expect("UI files are UTF-8");
            for line in text.lines() {
                let Some(at) = line.find(" from './").or_else(|| line.find("import './")) else { continue };
                let rest = &line[at..];
                let start = rest.find("./").map(|i| i + 2).expect("a relative import");
                let end = rest[start..].find('\'').expect("a quoted module name") + start;
                let module = &rest[start..end];
                assert!(served.contains(&module), "{} imports {module}, which ASSETS does not list", asset.name);
            }
            for reference in ["/ui/"] {
                for (at, _) in text.match_indices(reference) {
                    let rest = &text[at + reference.len()..];
                    let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                    let name = &rest[..end];
                    if !name.is_empty() && !name.contains('$') {
                        assert!(
                            served.contains(&name),
                            "{} refers to /ui/{name}, which ASSETS does not list",
                            asset.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_page_stays_small_and_loads_nothing_from_elsewhere() {
        let total: usize = ASSETS.iter().map(|asset| asset.bytes.len()).sum();
        assert!(total < 400 * 1024, "the UI is {total} bytes: a few hundred KB at most");
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.bytes).expect("UI files are UTF-8");
            for outside in ["http://", "https://", "//cdn", "@import url("] {
                // The SVG namespace is a name, not a fetch.
                let hits = text
                    .match_indices(outside)
                    .filter(|(at, _)| !text[*at..].starts_with("http://www.w3.org/"))
                    .count();
                assert_eq!(hits, 0, "{} mentions {outside}: the page must load nothing from outside", asset.name);
            }
        }
    }
}
