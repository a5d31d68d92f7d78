//! Tag autocomplete: the attribute names of each scope, and the values of one tag, over a tenant's blocks
//! in a time window and the ingester's spans. Blocks answer from their tag summary (`meta.json`, already
//! in the querier's memory); a block without one (written before summaries), or a list the summary had to
//! cut short, is answered by a bounded SQL scan over `spans` instead. Values narrowed by `q` always come
//! from SQL, since a summary does not know which values go together.

mod narrow;
mod tag;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};
use serde::Deserialize;

use super::request::{count, seconds};
use super::{SearchError, Searcher};
use crate::ids::TenantId;
use crate::spans::schema::{col, end_time_nanos};
use crate::storage::block::{ScopeTags, TagScope, TagSummary, TagSummaryBuilder, ValueList, ValueType};
pub use tag::Tag;
use tag::{KINDS, STATUSES};

/// Tempo's intrinsic tag names, listed under the `intrinsic` scope of `/api/v2/search/tags`.
pub const INTRINSIC_TAGS: [&str; 25] = [
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// Values (and names per scope) returned when the request sets no `limit`: what an autocomplete list can
/// show, and a bound on the scan that finds them.
pub const DEFAULT_TAG_LIMIT: usize = 10_000;

/// The tag endpoints' parameters, as text, as clients send them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TagParams {
    pub scope: Option<String>,
    /// An unfinished TraceQL query narrowing the values (v2 values only).
    pub q: Option<String>,
    /// Unix seconds.
    pub start: Option<String>,
    pub end: Option<String>,
    pub limit: Option<String>,
}

/// Which tag names a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeFilter {
    /// Every attribute scope, and the intrinsics.
    All,
    /// One attribute scope.
    Attributes(TagScope),
    /// The intrinsics alone.
    Intrinsic,
}

/// A checked tag request.
#[derive(Clone, Debug, PartialEq)]
pub struct TagsRequest {
    pub scope: ScopeFilter,
    pub q: Option<String>,
    /// Spans starting at or before `end` and ending at or after `start` (unix ns).
    pub start_unix_nano: Option<i64>,
    pub end_unix_nano: Option<i64>,
    pub limit: usize,
}

impl TagsRequest {
    /// Checks the parameters: a known scope, numbers that are numbers, an ordered window.
    pub fn from_params(params: &TagParams) -> Result<Self, SearchError> {
        let scope = match params.scope.as_deref().map(str::trim).unwrap_or_default() {
            "" | "all" => ScopeFilter::All,
            "intrinsic" => ScopeFilter::Intrinsic,
            name => ScopeFilter::Attributes(
                TagScope::ALL.into_iter().find(|scope| scope.name() == name).ok_or_else(|| {
                    SearchError::Parameter(format!(
                        "invalid scope {name:?}: expected resource, span, event, link, instrumentation, intrinsic or all"
                    ))
                })?,
            ),
        };
        let start_unix_nano = seconds("start", params.start.as_deref())?;
        let end_unix_nano = seconds("end", params.end.as_deref())?.map(|end| end.saturating_add(999_999_999));
        if let (Some(start), Some(end)) = (start_unix_nano, end_unix_nano)
            && end < start
        {
            return Err(SearchError::Parameter("invalid start: it must be before end".into()));
        }
        Ok(Self {
            scope,
            q: params.q.clone().filter(|q| !q.trim().is_empty()),
            start_unix_nano,
            end_unix_nano,
            limit: count("limit", params.limit.as_deref())?.unwrap_or(DEFAULT_TAG_LIMIT),
        })
    }

    /// The attribute scopes asked for.
    fn attribute_scopes(&self) -> Vec<TagScope> {
        match self.scope {
            ScopeFilter::All => TagScope::ALL.to_vec(),
            ScopeFilter::Attributes(scope) => vec![scope],
            ScopeFilter::Intrinsic => Vec::new(),
        }
    }

    /// The window as an SQL condition over `spans`.
    fn window_sql(&self) -> String {
        let mut parts = vec!["true".to_owned()];
        if let Some(end) = self.end_unix_nano {
            parts.push(format!("start_time <= to_timestamp_nanos({end})"));
        }
        if let Some(start) = self.start_unix_nano {
            parts.push(format!("end_time >= to_timestamp_nanos({start})"));
        }
        parts.join(" AND ")
    }
}

/// Attribute names per scope, sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TagNames {
    pub scopes: BTreeMap<TagScope, BTreeSet<String>>,
    /// Whether the intrinsics were asked for.
    pub intrinsics: bool,
}

/// One value of a tag, with Tempo's type name (`string`, `int`, `float`, `bool`, `keyword`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagValue {
    pub value: String,
    pub value_type: &'static str,
}

/// What the tenant holds in the window: its blocks and the ingester's spans in it.
struct InWindow {
    /// The tenant's blocks; their summaries are read in place (a tag request must not copy hundreds of
    /// them: that was most of its time).
    blocks: crate::query::TenantBlocks,
    /// The window, unix ns.
    start: u64,
    end: u64,
    recent: TagSummary,
}

impl InWindow {
    /// The summaries of the blocks in the window (`None`: a block without one), then the buffered spans'.
    fn summaries(&self) -> impl Iterator<Item = Option<&TagSummary>> {
        self.blocks
            .iter()
            .filter(|block| block.meta.overlaps_time(self.start, self.end))
            .map(|block| block.meta.tags.as_deref())
            .chain([Some(&self.recent)])
    }
}

impl Searcher {
    /// The attribute names per scope (`request.scope`), in the window, of the spans `request.q` matches.
    pub async fn tag_names(&self, tenant: &TenantId, request: &TagsRequest) -> Result<TagNames, SearchError> {
        let intrinsics = matches!(request.scope, ScopeFilter::All | ScopeFilter::Intrinsic);
        let mut names = TagNames { intrinsics, ..TagNames::default() };
        if request.scope == ScopeFilter::Intrinsic {
            return Ok(names);
        }
        let in_window = self.in_window(tenant, request).await?;
        let narrow = request.q.as_deref().and_then(narrow::condition);
        for scope in request.attribute_scopes() {
            // Narrowed names come from the matching spans alone, which only SQL can find.
            let narrowed = narrow
                .as_ref()
                .and_then(|narrow| keys_sql(scope, &format!("{} AND {narrow}", request.window_sql()), request.limit));
            if let Some(sql) = narrowed {
                names.scopes.insert(scope, self.strings(tenant, &sql).await?.into_iter().collect());
                continue;
            }
            let mut keys = BTreeSet::new();
            let mut scan = false;
            for summary in in_window.summaries() {
                match summary.map(|s| s.scope(scope)) {
                    Some(tags) => {
                        keys.extend(tags.keys.keys().cloned());
                        scan |= tags.keys_incomplete;
                    }
                    None => scan = true,
                }
            }
            if scan && let Some(sql) = keys_sql(scope, &request.window_sql(), request.limit) {
                keys.extend(self.strings(tenant, &sql).await?);
            }
            names.scopes.insert(scope, keys.into_iter().take(request.limit).collect());
        }
        Ok(names)
    }

    /// The values of `tag_name` in the window, narrowed by `request.q`, sorted, at most `request.limit`.
    pub async fn tag_values(
        &self,
        tenant: &TenantId,
        tag_name: &str,
        request: &TagsRequest,
    ) -> Result<Vec<TagValue>, SearchError> {
        let tag = Tag::parse(tag_name);
        let keywords = |values: &[&str]| {
            let mut listed: Vec<TagValue> =
                values.iter().map(|v| TagValue { value: (*v).to_owned(), value_type: "keyword" }).collect();
            listed.sort();
            listed.truncate(request.limit);
            listed
        };
        match tag {
            Tag::Status => return Ok(keywords(&STATUSES)),
            Tag::Kind => return Ok(keywords(&KINDS)),
            Tag::Unlisted => return Ok(Vec::new()),
            _ => {}
        }
        let in_window = self.in_window(tenant, request).await?;
        let (known, complete) = summarized_values(&tag, &in_window);
        let narrow = request.q.as_deref().and_then(narrow::condition);
        let mut values: BTreeSet<TagValue> = BTreeSet::new();
        if complete && narrow.is_none() {
            for (value, types) in known {
                values.extend(types.into_iter().map(|t| TagValue { value: value.clone(), value_type: t.name() }));
            }
        } else {
            let condition = match narrow {
                Some(narrow) => format!("{} AND {narrow}", request.window_sql()),
                None => request.window_sql(),
            };
            let Some(sql) = tag.values_sql(&condition, request.limit) else { return Ok(Vec::new()) };
            for value in self.strings(tenant, &sql).await? {
                // A scan reads text; the summaries know how most values were typed.
                let types = known.get(&value).cloned().unwrap_or_else(|| BTreeSet::from([ValueType::String]));
                values.extend(types.into_iter().map(|t| TagValue { value: value.clone(), value_type: t.name() }));
            }
        }
        Ok(values.into_iter().take(request.limit).collect())
    }

    /// The summaries of the tenant's blocks in the window, and a summary of its ingester's spans in it.
    async fn in_window(&self, tenant: &TenantId, request: &TagsRequest) -> Result<InWindow, SearchError> {
        let (blocks, recent, view) =
            self.querier().consistent_view(tenant).await.map_err(|error| SearchError::Unavailable(Box::new(error)))?;
        let (start, end) = (request.start_unix_nano.unwrap_or(0), request.end_unix_nano.unwrap_or(i64::MAX));
        // Other processes' ingesters (a querier of its own): their spans in the window. Suggestions are
        // a convenience: one that does not answer leaves its values out (logged), it does not fail them.
        let filter = crate::ingest::RecentFilter { end_min: Some(start), start_max: Some(end), ..Default::default() };
        let (from_peers, _failures) = self.querier().peer_rows(tenant, &filter, &view).await;
        // Up to a block's worth of buffered spans: read off the reactor.
        let recent = tokio::task::spawn_blocking(move || {
            let mut builder = TagSummaryBuilder::new();
            // Blocks waiting for upload are decoded only when their time range meets the window.
            let (from, to) = (u64::try_from(start).unwrap_or(0), u64::try_from(end).unwrap_or(0));
            let batches = recent
                .decoded(|block| block.meta.overlaps_time(from, to))
                .map_err(|e| SearchError::Internal(e.to_string()))?;
            for batch in batches.iter().chain(&from_peers) {
                let in_window = rows_in_window(batch, start, end)?;
                builder.add_batch(&in_window).map_err(|e| SearchError::Internal(e.to_string()))?;
            }
            Ok::<_, SearchError>(builder.finish())
        })
        .await
        .map_err(|e| SearchError::Internal(format!("summarising buffered spans: {e}")))??;
        Ok(InWindow { blocks, start: start.max(0) as u64, end: end.max(0) as u64, recent })
    }

    /// The first column of `sql`'s rows, as text, NULLs left out.
    async fn strings(&self, tenant: &TenantId, sql: &str) -> Result<Vec<String>, SearchError> {
        let batches = self.sql().query(tenant, sql).await?.collect().await?;
        let mut strings = Vec::new();
        for batch in batches {
            let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)
                .map_err(|e| SearchError::Internal(format!("tag query {sql:?}: {e}")))?;
            strings.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
        }
        Ok(strings)
    }
}

/// The values the summaries list for `tag` (text → types), and whether that is every value: false when
/// a block has no summary or a list it needs is incomplete.
fn summarized_values(tag: &Tag, in_window: &InWindow) -> (HashMap<String, BTreeSet<ValueType>>, bool) {
    let mut known: HashMap<String, BTreeSet<ValueType>> = HashMap::new();
    let mut complete = true;
    let mut add = |list: &ValueList| {
        for (value_type, values) in list.typed() {
            for value in values {
                known.entry(value.clone()).or_default().insert(value_type);
            }
        }
        list.incomplete
    };
    for summary in in_window.summaries() {
        let Some(summary) = summary else {
            complete = false;
            continue;
        };
        match tag {
            Tag::Name => complete &= !add(&summary.names),
            Tag::Attribute { key, .. } => {
                for scope in tag.scopes() {
                    let tags: &ScopeTags = summary.scope(scope);
                    match tags.keys.get(key) {
                        Some(list) => complete &= !add(list),
                        None => complete &= !tags.keys_incomplete,
                    }
                }
            }
            _ => complete = false,
        }
    }
    (known, complete)
}

/// `SELECT DISTINCT` of one scope's attribute keys in the window; `None` for scopes SQL does not show.
fn keys_sql(scope: TagScope, window: &str, limit: usize) -> Option<String> {
    let keys = match scope {
        TagScope::Span => format!("SELECT unnest(map_keys(attributes)) AS k FROM spans WHERE {window}"),
        TagScope::Resource => format!("SELECT unnest(map_keys(resource_attributes)) AS k FROM spans WHERE {window}"),
        TagScope::Event | TagScope::Link => {
            let list = if scope == TagScope::Event { "events" } else { "links" };
            format!(
                "SELECT unnest(map_keys(get_field(e, 'attributes'))) AS k FROM \
                 (SELECT unnest({list}) AS e FROM spans WHERE {window})"
            )
        }
        TagScope::Instrumentation => return None,
    };
    Some(format!("SELECT DISTINCT k FROM ({keys}) WHERE k IS NOT NULL ORDER BY k LIMIT {limit}"))
}

/// The rows of `batch` (stored schema) whose span overlaps `[start, end]` (unix ns).
fn rows_in_window(batch: &RecordBatch, start: i64, end: i64) -> Result<RecordBatch, SearchError> {
    let missing = |name: &str| SearchError::Internal(format!("buffered spans without a {name} column"));
    let starts = batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| missing(col::START_TIME))?;
    let durations = batch
        .column_by_name(col::DURATION_NS)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing(col::DURATION_NS))?;
    let keep: BooleanArray = (starts.values().iter().zip(durations.values().iter()))
        .map(|(&s, &d)| Some(s <= end && end_time_nanos(s, d).max(s) >= start))
        .collect();
    filter_record_batch(batch, &keep).map_err(|e| SearchError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TagParams {
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned());
        TagParams { scope: get("scope"), q: get("q"), start: get("start"), end: get("end"), limit: get("limit") }
    }

    #[test]
    fn parameters_are_checked_once() {
        let request =
            TagsRequest::from_params(&params(&[("scope", "resource"), ("start", "10"), ("end", "20")])).unwrap();
        assert_eq!(request.scope, ScopeFilter::Attributes(TagScope::Resource));
        assert_eq!((request.start_unix_nano, request.end_unix_nano), (Some(10_000_000_000), Some(20_999_999_999)));
        assert_eq!(request.limit, DEFAULT_TAG_LIMIT);
        assert_eq!(TagsRequest::from_params(&params(&[("scope", "all")])).unwrap().scope, ScopeFilter::All);
        for bad in [[("start", "yesterday")], [("scope", "trace")], [("limit", "-1")]] {
            assert!(matches!(TagsRequest::from_params(&params(&bad)), Err(SearchError::Parameter(_))), "{bad:?}");
        }
        let backwards = params(&[("start", "20"), ("end", "10")]);
        assert!(matches!(TagsRequest::from_params(&backwards), Err(SearchError::Parameter(_))));
    }
}
