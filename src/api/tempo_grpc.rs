//! Grafana's streaming search: `tempopb.StreamingQuerier/Search` over gRPC on the query port (h2c beside
//! HTTP, as Tempo's `stream_over_http_enabled`). A thin face: the request and the answers are `search`'s
//! values (`mapping.rs`); this file checks the tenant, runs
//! [`Searcher::search_progress`](crate::search::Searcher::search_progress) and streams.
//!
//! What the stream holds follows Tempo's query frontend (`pipeline/collector_grpc.go`): while the search
//! runs, at most every [`PROGRESS_INTERVAL`] a message with the traces that are new or changed since the
//! previous message and the metrics so far; at the end one message with the whole final answer. Grafana
//! (`pkg/tsdb/tempo/search_stream.go`) appends each message's traces to what it has, keeping the first copy
//! of a trace ID, and shows the last message's metrics. Holding each answer up to the interval means a
//! search that ends quickly sends one message, the whole answer.
//! The other `StreamingQuerier` calls (tag search, metrics) are not served: UNIMPLEMENTED.

mod mapping;

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, http};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use super::AppState;
use super::status::{Refusal, grpc_code};
use super::tempo_search::search_error_status;
use crate::query::tempopb;
use crate::receive;
use crate::search::{SearchError, SearchResponse};

/// The method's path, for routing.
pub const SEARCH_PATH: &str = "/tempopb.StreamingQuerier/Search";

/// How often, at most, a partial answer is sent while a search runs (Tempo's frontend sends its diffs
/// every 500 ms). Answers that come faster are folded into the next message.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// The `StreamingQuerier/Search` method as an HTTP service, for the query port's router.
#[derive(Clone)]
pub struct StreamingSearch {
    state: AppState,
}

/// The service over the server's state.
pub fn service(state: AppState) -> StreamingSearch {
    StreamingSearch { state }
}

/// True when a request is gRPC (`application/grpc`, `application/grpc+proto`, …).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// A gRPC error reply as an HTTP response (status 200, the code in the headers, as gRPC wants).
pub fn status_response(status: Status) -> axum::response::Response {
    status.into_http::<axum::body::Body>()
}

impl tower::Service<http::Request<axum::body::Body>> for StreamingSearch {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let method = tower::service_fn(move |request: tonic::Request<tempopb::SearchRequest>| {
                let state = state.clone();
                async move { start(&state, request) }
            });
            let codec = ProstCodec::<tempopb::SearchResponse, tempopb::SearchRequest>::default();
            // gzip both ways when the client offers it, as Tempo's gRPC server does.
            let mut grpc = tonic::server::Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

type MessageStream = BoxStream<'static, Result<tempopb::SearchResponse, Status>>;

/// Checks the tenant and the request, then starts the search; refusals end the call before any message.
fn start(
    state: &AppState,
    request: tonic::Request<tempopb::SearchRequest>,
) -> Result<tonic::Response<MessageStream>, Status> {
    let header = request.metadata().get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
    let authorization = request.metadata().get("authorization").map(|value| value.as_bytes());
    let tenant = state.tenant_of(authorization, header).map_err(|error| {
        let refusal = Refusal::from(&error);
        tracing::info!(message = %refusal.message, "gRPC search refused");
        refusal.grpc_status()
    })?;
    let search = mapping::search_request(request.get_ref()).map_err(|error| search_status(&error))?;
    tracing::debug!(tenant = %tenant, query = %search.text, "gRPC search");
    let answers = state.search.search_progress(tenant, search);
    Ok(tonic::Response::new(messages(answers, PROGRESS_INTERVAL)))
}

/// The gRPC status of a search error: the HTTP status `GET /api/search` gives, in gRPC terms
/// (InvalidArgument for 400, ResourceExhausted with RetryInfo for 429, …).
fn search_status(error: &SearchError) -> Status {
    let http = search_error_status(error);
    if http.is_server_error() {
        tracing::warn!(%error, "gRPC search failed");
    } else {
        tracing::info!(%error, "gRPC search refused");
    }
    Refusal { http, grpc: grpc_code(http), message: error.public_message(), detail: None, reason: "search" }
        .grpc_status()
}

/// Where the stream stands between messages.
struct Progress {
    answers: BoxStream<'static, Result<SearchResponse, SearchError>>,
    /// The newest answer not yet sent, and when the first answer not yet sent arrived.
    held: Option<(SearchResponse, tokio::time::Instant)>,
    /// How long an answer may wait for a newer one before it is sent.
    interval: Duration,
    sent: Sent,
    finished: bool,
}

/// The messages of one call, from the search's successive whole answers.
fn messages(answers: BoxStream<'static, Result<SearchResponse, SearchError>>, interval: Duration) -> MessageStream {
    let progress = Progress { answers, held: None, interval, sent: Sent::default(), finished: false };
    futures::stream::unfold(progress, |mut progress| async move {
        let message = progress.next_message().await?;
        Some((message, progress))
    })
    .boxed()
}

impl Progress {
    /// The next message: a diff once an answer has waited its interval, the whole answer when
    /// the search ends, or the error that ended it.
    async fn next_message(&mut self) -> Option<Result<tempopb::SearchResponse, Status>> {
        loop {
            if self.finished {
                return None;
            }
            let next = match &self.held {
                Some((_, since)) => tokio::time::timeout_at(*since + self.interval, self.answers.next()).await,
                None => Ok(self.answers.next().await),
            };
            match next {
                Err(_interval_passed) => {
                    let (answer, _) = self.held.take()?;
                    return Some(Ok(self.sent.diff(&answer)));
                }
                Ok(Some(Ok(answer))) => {
                    let since = self.held.take().map_or_else(tokio::time::Instant::now, |(_, since)| since);
                    self.held = Some((answer, since));
                }
                Ok(Some(Err(error))) => {
                    self.finished = true;
                    return Some(Err(search_status(&error)));
                }
                Ok(None) => {
                    self.finished = true;
                    return self.held.take().map(|(answer, _)| Ok(mapping::search_response(&answer)));
                }
            }
        }
    }
}

/// The traces already sent, as sent, so a partial message carries only what changed.
#[derive(Default)]
struct Sent {
    traces: HashMap<String, tempopb::TraceSearchMetadata>,
}

impl Sent {
    /// `answer`'s traces that are new or changed since the last message, with all the metrics so far.
    fn diff(&mut self, answer: &SearchResponse) -> tempopb::SearchResponse {
        let whole = mapping::search_response(answer);
        let traces = whole
            .traces
            .into_iter()
            .filter(|trace| {
                let unchanged = self.traces.get(&trace.trace_id) == Some(trace);
                if !unchanged {
                    self.traces.insert(trace.trace_id.clone(), trace.clone());
                }
                !unchanged
            })
            .collect();
        tempopb::SearchResponse { traces, metrics: whole.metrics }
    }
}

/// The refusal of a gRPC call that reached the query port while it is still starting.
pub fn starting() -> Status {
    Status::new(Code::Unavailable, "not ready: starting (replaying the write-ahead log)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;
    use crate::search::{SearchMetrics, TraceMatch};

    const TEST_INTERVAL: Duration = Duration::from_millis(20);

    fn trace(id: &str, duration_nanos: i64) -> TraceMatch {
        TraceMatch {
            trace_id: TraceId::from_hex(id).unwrap(),
            root_service_name: Some("shop".into()),
            root_trace_name: Some("GET /".into()),
            start_unix_nano: 1_700_000_000_000_000_000,
            duration_nanos,
            span_sets: vec![],
            service_stats: Default::default(),
        }
    }

    fn answer(traces: Vec<TraceMatch>, completed_jobs: u64) -> SearchResponse {
        let metrics = SearchMetrics { completed_jobs, total_jobs: 3, ..Default::default() };
        SearchResponse { traces, metrics, partial: Vec::new() }
    }

    #[tokio::test]
    async fn partial_answers_are_sent_as_diffs_then_the_final_answer_whole() {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        let mut stream = messages(receiver.boxed(), TEST_INTERVAL);

        sender.unbounded_send(Ok(answer(vec![trace("a1", 1_000_000)], 1))).unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.traces.iter().map(|t| t.trace_id.as_str()).collect::<Vec<_>>(), ["a1"]);
        assert_eq!(first.metrics.unwrap().completed_jobs, 1);

        // An unchanged trace is not sent again; a changed one is; metrics are always the latest.
        sender.unbounded_send(Ok(answer(vec![trace("a1", 1_000_000), trace("b2", 5_000_000)], 2))).unwrap();
        let second = stream.next().await.unwrap().unwrap();
        assert_eq!(second.traces.iter().map(|t| t.trace_id.as_str()).collect::<Vec<_>>(), ["b2"]);
        assert_eq!(second.metrics.unwrap().completed_jobs, 2);

        let last = answer(vec![trace("a1", 9_000_000), trace("b2", 5_000_000)], 3);
        sender.unbounded_send(Ok(last.clone())).unwrap();
        drop(sender);
        let final_message = stream.next().await.unwrap().unwrap();
        assert_eq!(final_message, mapping::search_response(&last), "the last message is the whole answer");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_search_that_ends_quickly_sends_one_message_and_errors_end_the_stream() {
        let whole = answer(vec![trace("a1", 1)], 3);
        let answers = futures::stream::iter([Ok(answer(vec![], 1)), Ok(whole.clone())]).boxed();
        let all: Vec<_> = messages(answers, TEST_INTERVAL).collect().await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap(), &mapping::search_response(&whole));

        let failing = futures::stream::iter([Err(SearchError::Parameter("bad".into()))]).boxed();
        let all: Vec<_> = messages(failing, TEST_INTERVAL).collect().await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap_err().code(), Code::InvalidArgument);
    }
}
