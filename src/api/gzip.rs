//! gzip for the query port's large answers: the web UI's files and trace-by-ID bodies (a 100,000-span trace
//! is ~47 MB of OTLP/JSON, ~10× less gzip'd). Only for clients that say they take it (`Accept-Encoding`;
//! browsers and Go's HTTP client, so Grafana, always do). Calls nothing else.

use std::io::Write;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Bodies smaller than this are sent as they are: compressing them saves less than it costs.
const MIN_BYTES: usize = 16 * 1024;

/// Whether the request's `Accept-Encoding` names gzip (with any quality other than 0).
pub fn accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name_is_gzip = parts.next().is_some_and(|name| name.trim().eq_ignore_ascii_case("gzip"));
            let refused = parts.any(|parameter| {
                parameter.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0)
            });
            name_is_gzip && !refused
        })
}

/// `bytes` gzip'd at `level` (0–9).
pub fn compress(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::new(level));
    // Writing into a Vec cannot fail.
    match encoder.write_all(bytes).and_then(|()| encoder.finish()) {
        Ok(compressed) => compressed,
        Err(_) => bytes.to_vec(),
    }
}

/// A 200 answer of `content_type` carrying `bytes`, gzip'd (fastest level, off the async threads) when the
/// client takes gzip and the body is large enough to gain from it.
pub async fn response(content_type: &'static str, bytes: Vec<u8>, request: &HeaderMap) -> Response {
    let (bytes, gzipped) = if accepted(request) && bytes.len() >= MIN_BYTES {
        match tokio::task::spawn_blocking(move || compress(&bytes, 1)).await {
            Ok(compressed) => (compressed, true),
            // The compression task panicked (it cannot, short of memory): nothing to send.
            Err(error) => {
                tracing::warn!(%error, "compressing an answer failed");
                return super::query::error_response(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "compressing the answer failed",
                );
            }
        }
    } else {
        (bytes, false)
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_only_when_the_client_names_it_without_refusing_it() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepted(&headers)
        };
        assert!(!accepted(&HeaderMap::new()));
        assert!(with("gzip"));
        assert!(with("br, GZIP;q=0.8"));
        assert!(with("gzip, deflate, br, zstd"));
        assert!(!with("identity, xgzip"));
        assert!(!with("gzip;q=0"));
        assert!(!with("deflate"));
    }

    #[test]
    fn compressed_bytes_come_back_equal() {
        let text = "spanlake ".repeat(10_000);
        let compressed = compress(text.as_bytes(), 1);
        assert!(compressed.len() < text.len() / 10);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut back).unwrap();
        assert_eq!(back, text);
    }
}
