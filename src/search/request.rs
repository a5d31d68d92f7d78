//! A search request as a value: Tempo's query parameters as sent, checked once into [`SearchRequest`].

use std::time::Duration;

use serde::Deserialize;

use super::SearchError;
use crate::traceql::{self, Query};

/// Tempo's `GET /api/search` parameters, as text, exactly as clients send them (Grafana sends durations
/// as Go durations such as `100ms`, times as unix seconds).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    /// A TraceQL query.
    pub q: Option<String>,
    /// logfmt `key=value` pairs, Tempo's search before TraceQL.
    pub tags: Option<String>,
    pub min_duration: Option<String>,
    pub max_duration: Option<String>,
    pub limit: Option<String>,
    /// Spans per spanset.
    pub spss: Option<String>,
    /// Unix seconds.
    pub start: Option<String>,
    pub end: Option<String>,
}

/// The default number of traces, as Tempo's.
pub const DEFAULT_LIMIT: usize = 20;
/// The default number of spans shown per spanset, as Tempo's.
pub const DEFAULT_SPANS_PER_SPANSET: usize = 3;

/// A checked search: a TraceQL query (tags become one), a time window and the answer's size.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    /// The query, checked; `{}` when the request had neither `q` nor `tags`.
    pub query: Query,
    /// The query as the client wrote it (or as the tags were translated), for logs and errors.
    pub text: String,
    /// Spans starting at or after this (unix ns); `None` searches from the oldest block.
    pub start_unix_nano: Option<i64>,
    /// Spans starting at or before this (unix ns); `None` searches up to the newest span.
    pub end_unix_nano: Option<i64>,
    /// Bounds on the trace's duration.
    pub min_duration: Option<Duration>,
    pub max_duration: Option<Duration>,
    /// Traces to return, at least 1.
    pub limit: usize,
    /// Spans shown per spanset; `matched` still counts them all.
    pub spans_per_spanset: usize,
}

impl SearchRequest {
    /// A request for `text` (TraceQL) over everything stored, with Tempo's defaults.
    pub fn traceql(text: &str) -> Result<Self, SearchError> {
        Ok(Self {
            query: traceql::check(text)?,
            text: text.to_owned(),
            start_unix_nano: None,
            end_unix_nano: None,
            min_duration: None,
            max_duration: None,
            limit: DEFAULT_LIMIT,
            spans_per_spanset: DEFAULT_SPANS_PER_SPANSET,
        })
    }

    /// Checks Tempo's parameters: `q` and `tags` are exclusive, numbers are numbers, the window is ordered.
    pub fn from_params(params: &SearchParams) -> Result<Self, SearchError> {
        let text = match (params.q.as_deref().map(str::trim), params.tags.as_deref().map(str::trim)) {
            (Some(q), Some(tags)) if !q.is_empty() && !tags.is_empty() => {
                return Err(SearchError::Parameter(
                    "invalid request: pass either q (TraceQL) or tags (logfmt), not both".into(),
                ));
            }
            (Some(q), _) if !q.is_empty() => q.to_owned(),
            (_, Some(tags)) if !tags.is_empty() => tags_to_traceql(tags)?,
            _ => "{}".to_owned(),
        };
        let mut request = Self::traceql(&text)?;
        request.min_duration = params.min_duration.as_deref().map(|d| duration("minDuration", d)).transpose()?;
        request.max_duration = params.max_duration.as_deref().map(|d| duration("maxDuration", d)).transpose()?;
        if let (Some(min), Some(max)) = (request.min_duration, request.max_duration)
            && max < min
        {
            return Err(SearchError::Parameter(
                "invalid maxDuration: it must be greater than or equal to minDuration".into(),
            ));
        }
        if let Some(limit) = count("limit", params.limit.as_deref())? {
            request.limit = limit;
        }
        if let Some(spss) = count("spss", params.spss.as_deref())? {
            request.spans_per_spanset = spss;
        }
        request.start_unix_nano = seconds("start", params.start.as_deref())?;
        request.end_unix_nano = seconds("end", params.end.as_deref())?.map(|end| end.saturating_add(999_999_999));
        if let (Some(start), Some(end)) = (request.start_unix_nano, request.end_unix_nano)
            && end < start
        {
            return Err(SearchError::Parameter("invalid start: it must be before end".into()));
        }
        Ok(request)
    }
}

/// A positive count; 0 or nothing means the default, as Tempo reads them.
pub(super) fn count(name: &str, text: Option<&str>) -> Result<Option<usize>, SearchError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let value: usize =
        text.parse().map_err(|_| SearchError::Parameter(format!("invalid {name} {text:?}: not a whole number")))?;
    Ok((value > 0).then_some(value))
}

/// Unix seconds as unix nanoseconds.
pub(super) fn seconds(name: &str, text: Option<&str>) -> Result<Option<i64>, SearchError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let value: i64 =
        text.parse().map_err(|_| SearchError::Parameter(format!("invalid {name} {text:?}: expected unix seconds")))?;
    if value == 0 {
        return Ok(None);
    }
    value
        .checked_mul(1_000_000_000)
        .map(Some)
        .ok_or_else(|| SearchError::Parameter(format!("invalid {name} {text:?}: out of range")))
}

/// A Go duration (`100ms`, `1.5s`, `2m30s`), as Grafana sends `minDuration` and `maxDuration`.
fn duration(name: &str, text: &str) -> Result<Duration, SearchError> {
    parse_go_duration(text.trim())
        .ok_or_else(|| SearchError::Parameter(format!("invalid {name} {text:?}: expected a duration such as 100ms")))
}

/// Go's `time.ParseDuration` for non-negative values: one or more decimal numbers, each with a unit
/// (`ns us µs ms s m h`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * nanos_per;
    }
    (total.is_finite() && total < 9.2e18).then(|| Duration::from_nanos(total.round() as u64))
}

/// Tempo's logfmt tag search as the TraceQL it means: every pair must hold. The well-known keys map to
/// intrinsics as Tempo's tag search reads them (`name`, `status.code`, `error=true`, the root's name and
/// service); `service.name` is the resource's; other keys are unscoped attributes compared as text.
pub fn tags_to_traceql(tags: &str) -> Result<String, SearchError> {
    let pairs = logfmt(tags).map_err(|problem| SearchError::Parameter(format!("invalid tags {tags:?}: {problem}")))?;
    pairs_to_traceql(pairs.iter().map(|(key, value)| (key.as_str(), value.as_str())))
}

/// Tag pairs already split (the `Tags` map of Tempo's gRPC `SearchRequest`) as the TraceQL they mean,
/// as [`tags_to_traceql`] reads them; no pairs is `{}`.
pub fn pairs_to_traceql<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<String, SearchError> {
    let mut conditions = Vec::new();
    for (key, value) in pairs {
        let quoted = quote(value);
        conditions.push(match key {
            "name" => format!("name = {quoted}"),
            "status.code" | "status" => match value {
                "ok" | "error" | "unset" => format!("status = {value}"),
                "0" | "STATUS_CODE_UNSET" => "status = unset".into(),
                "1" | "STATUS_CODE_OK" => "status = ok".into(),
                "2" | "STATUS_CODE_ERROR" => "status = error".into(),
                _ => return Err(SearchError::Parameter(format!("invalid tags: unknown status {value:?}"))),
            },
            "error" if value == "true" => "status = error".into(),
            "root.name" => format!("rootName = {quoted}"),
            "root.service.name" => format!("rootServiceName = {quoted}"),
            "service.name" => format!("resource.service.name = {quoted}"),
            _ => format!(".{} = {quoted}", attribute_name(key)),
        });
    }
    Ok(format!("{{{}}}", conditions.join(" && ")))
}

/// A TraceQL string literal of `value`.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// An attribute name as TraceQL reads it: bare when it is made of name characters, quoted otherwise.
fn attribute_name(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if bare { name.to_owned() } else { quote(name) }
}

/// logfmt pairs: `key=value`, `key="quoted value"`, separated by spaces.
fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next() != Some('=') {
            return Err(format!("{key:?} has no value (expected key=value)"));
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the value of {key:?} has no closing quote")),
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_go_reads_them() {
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse_go_duration("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "ms", "5 ms", "5d", "-1s", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_become_the_traceql_they_mean() {
        let text =
            tags_to_traceql(r#"service.name=shop name="GET /x" status.code=error http.status_code=500"#).unwrap();
        assert_eq!(
            text,
            r#"{resource.service.name = "shop" && name = "GET /x" && status = error && .http.status_code = "500"}"#
        );
        traceql::check(&text).unwrap();
        assert!(tags_to_traceql("novalue").is_err());
        assert!(tags_to_traceql(r#"a="open"#).is_err());
    }

    #[test]
    fn q_and_tags_together_and_backwards_windows_are_refused() {
        let both = SearchParams { q: Some("{}".into()), tags: Some("a=b".into()), ..Default::default() };
        assert!(matches!(SearchRequest::from_params(&both), Err(SearchError::Parameter(_))));
        let backwards = SearchParams { start: Some("20".into()), end: Some("10".into()), ..Default::default() };
        assert!(matches!(SearchRequest::from_params(&backwards), Err(SearchError::Parameter(_))));
        let bad_query = SearchParams { q: Some("{.a = 1 && 2}".into()), ..Default::default() };
        assert!(matches!(SearchRequest::from_params(&bad_query), Err(SearchError::Query(_))));
        let defaults = SearchRequest::from_params(&SearchParams::default()).unwrap();
        assert_eq!((defaults.limit, defaults.spans_per_spanset, defaults.text.as_str()), (20, 3, "{}"));
    }
}
