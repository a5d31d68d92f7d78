//! The search itself: a newest-first walk over the store that stops once `limit` traces are certain.
//!
//! The store is cut into slices of span start time, newest first, on block boundaries (one block, then
//! two, four, …), so the first slices hold the newest blocks and the ingester's recent spans. For each
//! slice one SQL query over `spans` (the query's pushed-down condition, `plan.rs`, plus the window and the
//! slice) names the traces with a span that may be in a result, and the earliest such start, which bounds
//! the trace's start from above. Those traces are then read whole (point reads of a few trace IDs, the
//! same path as trace by ID, one read per block; only the columns the query names, `trace::Needs`) and
//! evaluated exactly (`eval.rs`), highest bound first.
//!
//! Why this is exact: a trace starting at or after a slice's lower bound has all its spans in the slices
//! already searched, so it is a candidate by then; a candidate starts no later than its bound. Once
//! `limit` evaluated traces start after every bound still open (the pending candidates' and the next
//! slice's), no other trace can come before them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::answer::{MatchedSpan, SearchMetrics, SearchResponse, ServiceStats, SpanSet, TraceMatch};
use super::eval::{Evaluator, shown_fields, shown_name, shown_value};
use super::plan::{span_condition, sql_string};
use super::trace::{self, Needs, Trace};
use super::{SearchError, SearchRequest};
use crate::ids::{TenantId, TraceId};
use crate::query::{CatalogBlock, Querier};
use crate::sql::{Partial, Pruning, SqlEngine, SqlError};
use crate::traceql::ast::{BinaryOp, FieldExpr, FieldKind, Pipeline, Static};

/// Trace IDs read together: at most what the SQL engine reads by point reads (`sql::point`).
const FETCH_CHUNK: usize = 64;

/// Answers searches for one process, over the same engine (limits, sandbox, catalogue) as SQL. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Searcher {
    sql: SqlEngine,
}

/// One slice of span start times, `[low, high)`; `None` is unbounded.
#[derive(Clone, Copy, Debug)]
struct Slice {
    low: Option<i64>,
    high: Option<i64>,
}

impl Searcher {
    /// A searcher running its plans on `sql`, with row filters on: a search's conditions are meant to
    /// find few spans among many.
    pub fn new(sql: SqlEngine) -> Self {
        Self { sql: sql.with_row_filters() }
    }

    /// The querier underneath (its catalogue, its ingester's buffers).
    pub fn querier(&self) -> &Querier {
        self.sql.querier()
    }

    /// The SQL engine underneath.
    pub fn sql(&self) -> &SqlEngine {
        &self.sql
    }

    /// The answer to `request` over `tenant`'s spans.
    pub async fn search(&self, tenant: &TenantId, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        self.walk_refreshed(tenant, request, &mut |_| {}).await
    }

    /// The answer as it grows: each item is the whole answer so far (traces newest first, metrics
    /// cumulative), the last one final. For Grafana's streaming search.
    pub fn search_progress(
        &self,
        tenant: TenantId,
        request: SearchRequest,
    ) -> BoxStream<'static, Result<SearchResponse, SearchError>> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let searcher = self.clone();
        tokio::spawn(async move {
            let progress = sender.clone();
            let outcome = searcher
                .walk_refreshed(&tenant, &request, &mut |partial| {
                    let _ = progress.send(Ok(partial.clone()));
                })
                .await;
            let _ = sender.send(outcome);
        });
        tokio_stream_of(receiver)
    }

    /// [`walk`](Self::walk), once more after a refresh of the tenant's blocks if a block the catalogue
    /// knew is gone from the store (another process's compactor deleted it before this querier's refresh),
    /// as SQL does: never a silent subset, and no 503 for what a LIST would have told.
    async fn walk_refreshed(
        &self,
        tenant: &TenantId,
        request: &SearchRequest,
        progress: &mut (dyn FnMut(&SearchResponse) + Send),
    ) -> Result<SearchResponse, SearchError> {
        match self.walk(tenant, request, progress).await {
            Err(SearchError::Sql(error)) if error.is_missing_object() => {
                tracing::info!(%tenant, %error, "a block of the search is gone from the store; refreshing and searching again");
                self.querier().catalog().refresh(tenant).await.map_err(|e| SearchError::Unavailable(Box::new(e)))?;
                self.walk(tenant, request, progress).await
            }
            other => other,
        }
    }

    async fn walk(
        &self,
        tenant: &TenantId,
        request: &SearchRequest,
        progress: &mut (dyn FnMut(&SearchResponse) + Send),
    ) -> Result<SearchResponse, SearchError> {
        check_regexes(&request.query.pipeline)?;
        let condition = span_condition(&request.query);
        let needs = Needs::of(&request.query);
        let blocks =
            self.querier().catalog().blocks(tenant).await.map_err(|e| SearchError::Unavailable(Box::new(e)))?;
        let (in_window, slices) = slices(&blocks, request);
        let mut metrics = SearchMetrics {
            total_blocks: in_window.len() as u64,
            total_block_bytes: in_window.iter().map(|b| b.meta.data_bytes).sum(),
            total_jobs: slices.len() as u64,
            blocks_pruned_by_time: (blocks.len() - in_window.len()) as u64,
            ..SearchMetrics::default()
        };
        let mut walk = Walk {
            request,
            evaluator: Evaluator::new(&request.query),
            shown: shown_fields(&request.query),
            pending: HashMap::new(),
            evaluated: HashSet::new(),
            found: Vec::new(),
            partial: Partial::default(),
        };
        let mut scanned: HashSet<usize> = HashSet::new();
        for (index, slice) in slices.iter().enumerate() {
            let last = index + 1 == slices.len();
            let (candidates, spans, pruning) =
                self.candidates(tenant, request, condition.as_deref(), *slice, &walk.partial).await?;
            metrics.inspected_spans += spans;
            metrics.blocks_pruned_by_summary += pruning.pruned_by_summary as u64;
            for (id, bound) in candidates {
                if !walk.evaluated.contains(&id) {
                    let entry = walk.pending.entry(id).or_insert(bound);
                    *entry = (*entry).min(bound);
                }
            }
            for (i, block) in in_window.iter().enumerate() {
                if overlaps(block, *slice) && scanned.insert(i) {
                    metrics.blocks_scanned += 1;
                    metrics.inspected_bytes += block.meta.data_bytes;
                }
            }
            metrics.completed_jobs += 1;
            loop {
                if walk.certain(if last { None } else { slice.low }) {
                    break;
                }
                let chunk = walk.next_chunk(if last { None } else { slice.low });
                if chunk.is_empty() {
                    break;
                }
                metrics.inspected_traces += chunk.len() as u64;
                let traces = self.fetch(tenant, &chunk, needs, &walk.partial).await?;
                for id in &chunk {
                    walk.pending.remove(id);
                    walk.evaluated.insert(*id);
                }
                for trace in &traces {
                    if let Some(found) = walk.evaluate(trace) {
                        walk.found.push(found);
                    }
                }
                walk.sort();
            }
            let done = walk.certain(if last { None } else { slice.low });
            if done || last {
                metrics.blocks_not_needed = (in_window.len() - scanned.len()) as u64;
                metrics.completed_jobs = metrics.total_jobs;
                return Ok(walk.answer(metrics));
            }
            progress(&walk.certain_so_far(slice.low, metrics));
        }
        Ok(walk.answer(metrics))
    }

    /// The traces with a span in `slice` that may be in a result, each with its earliest such start.
    async fn candidates(
        &self,
        tenant: &TenantId,
        request: &SearchRequest,
        condition: Option<&str>,
        slice: Slice,
        partial: &Partial,
    ) -> Result<(Vec<(TraceId, i64)>, u64, Pruning), SearchError> {
        let mut filters = Vec::new();
        if let Some(end) = request.end_unix_nano {
            filters.push(format!("start_time <= {}", timestamp(end)));
        }
        if let Some(start) = request.start_unix_nano {
            filters.push(format!("end_time >= {}", timestamp(start)));
        }
        if let Some(low) = slice.low {
            filters.push(format!("start_time >= {}", timestamp(low)));
        }
        if let Some(high) = slice.high {
            filters.push(format!("start_time < {}", timestamp(high)));
        }
        filters.extend(condition.map(str::to_owned));
        let filter = if filters.is_empty() { String::new() } else { format!(" WHERE {}", filters.join(" AND ")) };
        let sql = format!(
            "SELECT trace_id, CAST(min(start_time) AS BIGINT) AS bound, count(*) AS spans FROM spans{filter} GROUP BY trace_id"
        );
        let (batches, pruning) = self.run(tenant, &sql, partial).await?;
        let mut candidates = Vec::new();
        let mut spans = 0;
        for batch in &batches {
            let ids = cast(batch.column(0), &DataType::Utf8).map_err(internal)?;
            let ids = ids.as_string::<i32>();
            let bounds = batch.column(1).as_primitive::<Int64Type>();
            let counts = cast(batch.column(2), &DataType::Int64).map_err(internal)?;
            let counts = counts.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let id = TraceId::from_hex(ids.value(row)).map_err(internal)?;
                candidates.push((id, bounds.value(row)));
                spans += u64::try_from(counts.value(row)).unwrap_or(0);
            }
        }
        Ok((candidates, spans, pruning))
    }

    /// The whole traces of `ids`, with the columns `needs` names.
    async fn fetch(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
        needs: Needs,
        partial: &Partial,
    ) -> Result<Vec<Trace>, SearchError> {
        let list: Vec<String> = ids.iter().map(|id| sql_string(&id.to_hex())).collect();
        let sql = format!("SELECT {} FROM spans WHERE trace_id IN ({})", needs.columns(), list.join(", "));
        let (batches, _) = self.run(tenant, &sql, partial).await?;
        trace::decode(&batches)
    }

    /// Runs SQL the search wrote. The engine's limits apply; SQL it refuses is a bug here, not the user's.
    /// Why its rows may lack spans goes into `partial`.
    async fn run(
        &self,
        tenant: &TenantId,
        sql: &str,
        partial: &Partial,
    ) -> Result<(Vec<RecordBatch>, Pruning), SearchError> {
        let rows = async {
            let rows = self.sql.query(tenant, sql).await?;
            partial.note(rows.partial().iter().cloned());
            let pruning = rows.pruning();
            Ok((rows.collect().await?, pruning))
        };
        rows.await.map_err(|error: SqlError| match error {
            SqlError::Invalid(_) | SqlError::NotReadOnly(_) => {
                SearchError::Internal(format!("the search's own SQL was refused: {error}; SQL: {sql}"))
            }
            other => SearchError::from(other),
        })
    }
}

fn internal(error: impl std::fmt::Display) -> SearchError {
    SearchError::Internal(error.to_string())
}

fn tokio_stream_of<T: Send + 'static>(mut receiver: tokio::sync::mpsc::UnboundedReceiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// A timestamp literal SQL folds into a constant the block pruning reads.
fn timestamp(unix_nano: i64) -> String {
    format!("to_timestamp_nanos({unix_nano})")
}

/// Whether some span of `block` may start within `slice`.
fn overlaps(block: &CatalogBlock, slice: Slice) -> bool {
    let (min, max) = (block.meta.min_start_unix_nano as i64, block.meta.max_start_unix_nano as i64);
    slice.low.is_none_or(|low| max >= low) && slice.high.is_none_or(|high| min < high)
}

/// The blocks the window admits, and the slices to walk, newest first: the first holds the newest block,
/// each next one twice as many blocks as the one before, the last reaches back to the window's start.
fn slices(blocks: &[Arc<CatalogBlock>], request: &SearchRequest) -> (Vec<Arc<CatalogBlock>>, Vec<Slice>) {
    let mut in_window: Vec<Arc<CatalogBlock>> = blocks
        .iter()
        .filter(|block| {
            let meta = &block.meta;
            let end = meta.max_end_unix_nano.max(meta.max_start_unix_nano) as i64;
            request.end_unix_nano.is_none_or(|e| meta.min_start_unix_nano as i64 <= e)
                && request.start_unix_nano.is_none_or(|s| end >= s)
        })
        .cloned()
        .collect();
    in_window.sort_by_key(|block| std::cmp::Reverse(block.meta.max_start_unix_nano));
    let mut slices = Vec::new();
    let mut high: Option<i64> = None;
    let (mut taken, mut size) = (0usize, 1usize);
    while taken < in_window.len() {
        let group = &in_window[taken..(taken + size).min(in_window.len())];
        taken += group.len();
        size *= 2;
        let low = group.iter().map(|b| b.meta.min_start_unix_nano as i64).min().unwrap_or(0);
        let low = high.map_or(low, |h| low.min(h));
        if taken >= in_window.len() || request.start_unix_nano.is_some_and(|s| low <= s) {
            break;
        }
        if high.is_none_or(|h| low < h) {
            slices.push(Slice { low: Some(low), high });
            high = Some(low);
        }
    }
    slices.push(Slice { low: None, high });
    (in_window, slices)
}

/// The walk's state: traces still to evaluate with the bound on their start, the ones evaluated, and the
/// matches so far, newest first.
struct Walk<'q> {
    request: &'q SearchRequest,
    evaluator: Evaluator<'q>,
    shown: Vec<FieldExpr>,
    pending: HashMap<TraceId, i64>,
    evaluated: HashSet<TraceId>,
    found: Vec<TraceMatch>,
    /// Why the answer may lack traces, from every query the walk ran.
    partial: Partial,
}

impl Walk<'_> {
    fn sort(&mut self) {
        self.found.sort_by(|a, b| b.start_unix_nano.cmp(&a.start_unix_nano).then(a.trace_id.cmp(&b.trace_id)));
    }

    /// Whether the first `limit` matches are final: they start after every pending bound, and (unless
    /// this is the last slice) at or after `low`, before which every unseen trace starts.
    fn certain(&self, low: Option<i64>) -> bool {
        let Some(kth) = self.found.get(self.request.limit.max(1) - 1) else {
            return false;
        };
        // A pending trace starts no later than its bound. With a bound equal to the k-th start it can only
        // tie, and ties sort by trace ID: one with a greater ID sorts after the k-th whatever it holds.
        // (Without this, traces starting in the same nanosecond were all read before any was certain.)
        let pending_ok = self
            .pending
            .iter()
            .all(|(id, &bound)| bound < kth.start_unix_nano || (bound == kth.start_unix_nano && *id > kth.trace_id));
        pending_ok && low.is_none_or(|low| kth.start_unix_nano >= low)
    }

    /// The pending traces to read next: the highest bounds first, only those at or above `low` unless
    /// this is the last slice, at most [`FETCH_CHUNK`].
    fn next_chunk(&self, low: Option<i64>) -> Vec<TraceId> {
        let mut open: Vec<(i64, TraceId)> = self
            .pending
            .iter()
            .filter(|(_, bound)| low.is_none_or(|low| **bound >= low))
            .map(|(id, bound)| (*bound, *id))
            .collect();
        open.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let wanted = self.request.limit.saturating_sub(self.found.len()).max(8) * 2;
        open.into_iter().take(wanted.min(FETCH_CHUNK)).map(|(_, id)| id).collect()
    }

    /// The trace as a result, if the query selects spans of it, one of them within the window, and its
    /// duration is within bounds.
    fn evaluate(&mut self, trace: &Trace) -> Option<TraceMatch> {
        let request = self.request;
        let duration = u128::try_from(trace.duration_nanos()).unwrap_or(0);
        if request.min_duration.is_some_and(|min| duration < min.as_nanos())
            || request.max_duration.is_some_and(|max| duration > max.as_nanos())
        {
            return None;
        }
        let sets = self.evaluator.spansets(trace);
        let in_window = |i: &usize| {
            let span = &trace.spans[*i];
            request.end_unix_nano.is_none_or(|end| span.start_unix_nano <= end)
                && request.start_unix_nano.is_none_or(|start| span.end_unix_nano.max(span.start_unix_nano) >= start)
        };
        if !sets.iter().any(|set| set.spans.iter().any(in_window)) {
            return None;
        }
        let mut service_stats: BTreeMap<String, ServiceStats> = BTreeMap::new();
        for span in &trace.spans {
            let stats = service_stats.entry(span.service_name.clone().unwrap_or_default()).or_default();
            stats.span_count += 1;
            stats.error_count += usize::from(span.status == "error");
        }
        let root = trace.root.map(|r| &trace.spans[r]);
        let span_sets = sets
            .iter()
            .map(|set| SpanSet {
                matched: set.spans.len(),
                spans: set.spans.iter().take(request.spans_per_spanset).map(|&i| self.matched_span(trace, i)).collect(),
                attributes: set
                    .attributes
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.to_attribute()?)))
                    .collect(),
            })
            .collect();
        Some(TraceMatch {
            trace_id: trace.id,
            root_service_name: root.map(|r| r.service_name.clone().unwrap_or_default()),
            root_trace_name: root.map(|r| r.name.clone()),
            start_unix_nano: trace.start_unix_nano,
            duration_nanos: trace.duration_nanos(),
            span_sets,
            service_stats,
        })
    }

    fn matched_span(&mut self, trace: &Trace, i: usize) -> MatchedSpan {
        let span = &trace.spans[i];
        let mut attributes = Vec::new();
        if let Some(service) = &span.service_name {
            attributes.push(("service.name".to_owned(), super::AttributeValue::Str(service.clone())));
        }
        let shown = std::mem::take(&mut self.shown);
        for field in &shown {
            let name = shown_name(field);
            if name == "service.name" {
                continue;
            }
            if let Some(value) = shown_value(&mut self.evaluator, field, trace, i).to_attribute() {
                attributes.push((name, value));
            }
        }
        self.shown = shown;
        MatchedSpan {
            span_id: span.span_id,
            name: span.name.clone(),
            start_unix_nano: span.start_unix_nano,
            duration_nanos: span.duration_nanos,
            attributes,
        }
    }

    /// The matches already certain to be in the final answer, in its order: those starting after every
    /// pending bound and at or after `low` (every trace not yet seen starts before it). Grafana keeps
    /// every trace a streamed message showed, so a partial answer must hold nothing a later one drops.
    fn certain_so_far(&self, low: Option<i64>, metrics: SearchMetrics) -> SearchResponse {
        let bound = self.pending.values().copied().max();
        let traces = self
            .found
            .iter()
            .take(self.request.limit)
            .take_while(|t| bound.is_none_or(|b| t.start_unix_nano > b) && low.is_none_or(|l| t.start_unix_nano >= l))
            .cloned()
            .collect();
        SearchResponse { traces, metrics, partial: self.partial.reasons() }
    }

    fn answer(&self, metrics: SearchMetrics) -> SearchResponse {
        let traces = self.found.iter().take(self.request.limit).cloned().collect();
        SearchResponse { traces, metrics, partial: self.partial.reasons() }
    }
}

/// Refuses a regular expression the engine cannot compile, with the client's pattern named: a 400 rather
/// than a failure halfway through the walk.
fn check_regexes(pipeline: &Pipeline) -> Result<(), SearchError> {
    pipeline.visit_fields(&mut |expr: &FieldExpr| {
        let FieldKind::Binary(BinaryOp::Regex | BinaryOp::NotRegex, left, right) = &expr.kind else {
            return Ok(());
        };
        for side in [left, right] {
            if let FieldKind::Static(Static::Str(pattern)) = &side.kind {
                regex::Regex::new(pattern).map_err(|error| {
                    SearchError::Parameter(format!("invalid TraceQL query: regular expression {pattern:?}: {error}"))
                })?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(id: u128, start: i64) -> TraceMatch {
        TraceMatch {
            trace_id: TraceId::from_hex(&format!("{id:x}")).unwrap(),
            root_service_name: None,
            root_trace_name: None,
            start_unix_nano: start,
            duration_nanos: 1,
            span_sets: Vec::new(),
            service_stats: BTreeMap::new(),
        }
    }

    #[test]
    fn only_traces_nothing_unseen_can_overtake_are_certain() {
        let request = SearchRequest { limit: 3, ..SearchRequest::traceql("{}").unwrap() };
        let mut walk = Walk {
            request: &request,
            evaluator: Evaluator::new(&request.query),
            shown: Vec::new(),
            pending: HashMap::from([(TraceId::from_hex("99").unwrap(), 70)]),
            evaluated: HashSet::new(),
            found: vec![trace(1, 100), trace(2, 90), trace(3, 50)],
            partial: Partial::default(),
        };
        let starts = |answer: SearchResponse| answer.traces.iter().map(|t| t.start_unix_nano).collect::<Vec<_>>();
        // A pending trace may start as late as 70: the trace starting at 50 may yet be overtaken.
        assert_eq!(starts(walk.certain_so_far(Some(60), SearchMetrics::default())), [100, 90]);
        assert!(!walk.certain(Some(60)), "three found, but the third is not final");
        // Unseen traces start before 95: only the first is final.
        assert_eq!(starts(walk.certain_so_far(Some(95), SearchMetrics::default())), [100]);
        walk.pending.clear();
        walk.found[2] = trace(3, 80);
        assert!(walk.certain(Some(60)));
        assert_eq!(starts(walk.certain_so_far(Some(60), SearchMetrics::default())), [100, 90, 80]);
        // Equal starts sort by trace ID: a pending trace bounded by the third's start sorts after it when
        // its ID is greater, whatever it holds, and may sort before it when its ID is smaller.
        walk.pending.insert(TraceId::from_hex("98").unwrap(), 80);
        assert!(walk.certain(Some(60)), "a tie with a greater ID cannot overtake");
        walk.pending.insert(TraceId::from_hex("2").unwrap(), 80);
        assert!(!walk.certain(Some(60)), "a tie with a smaller ID may overtake");
    }
}
