//! The query parameters of Jaeger's API as Jaeger reads them: times in microseconds (trace by ID also takes
//! the milliseconds Grafana sends), Go durations, `tags` as JSON and `tag` as `key:value`, hex trace IDs,
//! and their translation into a TraceQL search.

use std::collections::BTreeMap;

use crate::ids::TraceId;
use crate::query::TimeWindow;

/// How far back a search looks without `start` (Jaeger's default).
const DEFAULT_LOOKBACK_MICROS: i64 = 48 * 3_600 * 1_000_000;

/// Traces a search returns without `limit` (Jaeger's default).
const DEFAULT_LIMIT: usize = 100;

/// Most traces one search returns: each is read whole.
const MAX_LIMIT: usize = 1_000;

/// What the dependency graph covers without `lookback` (Jaeger's default): a day, in milliseconds.
const DEFAULT_DEPENDENCY_LOOKBACK_MS: i64 = 24 * 3_600 * 1_000;

/// Below this a time parameter cannot be microseconds of this era (it would be before 1973): it is
/// milliseconds, as Grafana's Jaeger data source sends for trace by ID.
const SMALLEST_MICROS: i64 = 100_000_000_000_000;

/// A parameter Jaeger would refuse, with Jaeger's wording (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("unable to parse param '{name}': {reason}")]
    Unparsable { name: &'static str, reason: String },
    #[error("'maxDuration' should be greater than 'minDuration'")]
    DurationsReversed,
    #[error("malformed 'tag' parameter, expecting key:value, received: {0}")]
    Tag(String),
    #[error("malformed 'tags' parameter, cannot unmarshal JSON: {0}")]
    Tags(String),
    #[error("cannot parse traceID param: {0}")]
    TraceId(String),
    #[error("'end' ({end}) is before 'start' ({start})")]
    Reversed { start: i64, end: i64 },
}

/// The decoded query string, in order, repeated names kept.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a raw query string (`+` as space, percent escapes).
    pub fn parse(query: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn integer(&self, name: &'static str) -> Result<Option<i64>, ParamError> {
        match self.first(name).map(str::trim).filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e: std::num::ParseIntError| ParamError::Unparsable { name, reason: e.to_string() }),
        }
    }

    /// Trace by ID's `start`/`end`: microseconds, or milliseconds when too small to be microseconds.
    pub fn lookup_window(&self) -> Result<TimeWindow, ParamError> {
        let nanos = |micros_or_millis: i64| {
            let micros = if micros_or_millis < SMALLEST_MICROS {
                micros_or_millis.saturating_mul(1_000)
            } else {
                micros_or_millis
            };
            u64::try_from(micros.saturating_mul(1_000)).unwrap_or(0)
        };
        let start = self.integer("start")?.map(nanos);
        // The end covers its whole millisecond or microsecond.
        let end = self.integer("end")?.map(|end| nanos(end).saturating_add(999_999));
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(ParamError::Reversed { start: start as i64, end: end as i64 });
        }
        Ok(TimeWindow::from_unix_nanos(start, end))
    }

    /// The v3 trace's `startTime`/`endTime` (or `start_time`/`end_time`): RFC 3339 in UTC.
    pub fn rfc3339_window(&self) -> Result<TimeWindow, ParamError> {
        let read = |name: &'static str, alias: &str| -> Result<Option<u64>, ParamError> {
            let Some(text) = self.first(name).or_else(|| self.first(alias)) else { return Ok(None) };
            // An unescaped `+` of a zone offset arrives as a space.
            let text = text.trim().replace(' ', "+");
            let time = humantime::parse_rfc3339_weak(&text)
                .map_err(|e| ParamError::Unparsable { name, reason: e.to_string() })?;
            let nanos = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Ok(Some(u64::try_from(nanos).unwrap_or(u64::MAX)))
        };
        Ok(TimeWindow::from_unix_nanos(read("startTime", "start_time")?, read("endTime", "end_time")?))
    }

    /// The dependency graph's window in unix milliseconds: `endTs` (default now) and `lookback` before it.
    pub fn dependency_window(&self, now_ms: i64) -> Result<(i64, i64), ParamError> {
        let end = self.integer("endTs")?.unwrap_or(now_ms);
        let lookback = self.integer("lookback")?.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS);
        Ok((end.saturating_sub(lookback.max(0)), end))
    }

    /// A search's parameters.
    pub fn search(&self, now_micros: i64) -> Result<Search, ParamError> {
        let end_micros = self.integer("end")?.unwrap_or(now_micros);
        let start_micros = self.integer("start")?.unwrap_or(end_micros.saturating_sub(DEFAULT_LOOKBACK_MICROS));
        let duration = |name: &'static str| -> Result<Option<u64>, ParamError> {
            match self.first(name).map(str::trim).filter(|text| !text.is_empty()) {
                None => Ok(None),
                Some(text) => go_duration(text).map(Some).map_err(|reason| ParamError::Unparsable { name, reason }),
            }
        };
        let min_duration = duration("minDuration")?.filter(|d| *d > 0);
        let max_duration = duration("maxDuration")?.filter(|d| *d > 0);
        if let (Some(min), Some(max)) = (min_duration, max_duration)
            && max < min
        {
            return Err(ParamError::DurationsReversed);
        }
        let limit = match self.first("limit").map(str::trim).filter(|text| !text.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(text) => {
                let limit: i64 = text.parse().map_err(|e: std::num::ParseIntError| ParamError::Unparsable {
                    name: "limit",
                    reason: e.to_string(),
                })?;
                usize::try_from(limit).ok().filter(|l| *l > 0).unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
            }
        };
        let mut tags = BTreeMap::new();
        for pair in self.all("tag") {
            let (key, value) = pair.split_once(':').ok_or_else(|| ParamError::Tag(pair.to_owned()))?;
            tags.insert(key.to_owned(), value.to_owned());
        }
        for json in self.all("tags") {
            let map: BTreeMap<String, String> =
                serde_json::from_str(json).map_err(|e| ParamError::Tags(e.to_string()))?;
            tags.extend(map);
        }
        let trace_ids = self.all("traceID").map(trace_id).collect::<Result<Vec<_>, _>>()?;
        let text = |name| self.first(name).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(Search {
            service: text("service"),
            operation: text("operation"),
            tags,
            min_duration,
            max_duration,
            limit,
            start_micros,
            end_micros,
            trace_ids,
        })
    }
}

/// A trace ID as Jaeger takes it: 1–32 hex characters (a 64-bit ID is the low half).
pub fn trace_id(text: &str) -> Result<TraceId, ParamError> {
    TraceId::from_hex(text.trim()).map_err(|e| ParamError::TraceId(e.to_string()))
}

/// A Go duration (`1.5ms`, `2s`, `1h30m`, `+1s`, `0`) in nanoseconds, read by the search's own Go-duration
/// reader; Go's own error text otherwise.
pub fn go_duration(text: &str) -> Result<u64, String> {
    crate::search::parse_go_duration(text.strip_prefix('+').unwrap_or(text))
        .and_then(|duration| u64::try_from(duration.as_nanos()).ok())
        .ok_or_else(|| format!("time: invalid duration {text:?}"))
}

/// A checked search: what `/api/traces` asks for.
#[derive(Debug)]
pub struct Search {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub min_duration: Option<u64>,
    pub max_duration: Option<u64>,
    pub limit: usize,
    pub start_micros: i64,
    pub end_micros: i64,
    pub trace_ids: Vec<TraceId>,
}

impl Search {
    /// The TraceQL of the search: one spanset, so every condition holds for the same span, as in Jaeger.
    /// A tag is a span or resource attribute (Jaeger's span and process tags), matched as the text given or
    /// as the number or boolean that text is; `error`, `span.kind` and `otel.status_code` are the span's
    /// status and kind, which Jaeger shows as those tags.
    pub fn traceql(&self, service: &str) -> String {
        let mut conditions = vec![format!("resource.service.name = {}", quoted(service))];
        if let Some(operation) = &self.operation {
            conditions.push(format!("name = {}", quoted(operation)));
        }
        for (key, value) in &self.tags {
            conditions.push(tag_condition(key, value));
        }
        if let Some(min) = self.min_duration {
            conditions.push(format!("duration >= {min}ns"));
        }
        if let Some(max) = self.max_duration {
            conditions.push(format!("duration <= {max}ns"));
        }
        format!("{{ {} }}", conditions.join(" && "))
    }
}

/// A TraceQL string literal.
pub(super) fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `.key`, quoted where the name has characters an unquoted TraceQL name may not.
fn attribute(key: &str) -> String {
    let plain =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':'));
    if plain { format!(".{key}") } else { format!(".{}", quoted(key)) }
}

fn tag_condition(key: &str, value: &str) -> String {
    match (key, value.to_ascii_lowercase().as_str()) {
        ("error", "true") => return "status = error".to_owned(),
        ("error", "false") => return "status != error".to_owned(),
        ("otel.status_code", "ok") => return "status = ok".to_owned(),
        ("otel.status_code", "error") => return "status = error".to_owned(),
        ("span.kind", kind @ ("server" | "client" | "producer" | "consumer" | "internal")) => {
            return format!("kind = {kind}");
        }
        _ => {}
    }
    let name = attribute(key);
    let as_text = format!("{name} = {}", quoted(value));
    // The text also spells a number or a boolean: an attribute of that type matches too.
    let number =
        value.parse::<i64>().is_ok() || (value.contains('.') && value.parse::<f64>().is_ok_and(f64::is_finite));
    if number || value == "true" || value == "false" { format!("({as_text} || {name} = {value})") } else { as_text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_go_reads_them() {
        assert_eq!(go_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("300us"), Ok(300_000));
        assert_eq!(go_duration("2µs"), Ok(2_000));
        assert_eq!(go_duration("0"), Ok(0));
        for bad in ["100", "", "ms", "1x", "-1s", "1.2.3s"] {
            assert_eq!(go_duration(bad), Err(format!("time: invalid duration {bad:?}")), "{bad}");
        }
    }

    #[test]
    fn a_grafana_search_becomes_one_spanset() {
        let query = "end=1738368000000000&limit=20&maxDuration=2s&minDuration=1ms&operation=HTTP+GET+%2Fdispatch\
                     &service=frontend&start=1735689600000000&tags=%7B%22error%22%3A%22true%22%2C%22http.status_code%22%3A%22500%22%7D";
        let search = Params::parse(Some(query)).search(0).unwrap();
        assert_eq!(
            (search.start_micros, search.end_micros, search.limit),
            (1_735_689_600_000_000, 1_738_368_000_000_000, 20)
        );
        assert_eq!(
            search.traceql("frontend"),
            r#"{ resource.service.name = "frontend" && name = "HTTP GET /dispatch" && status = error && (.http.status_code = "500" || .http.status_code = 500) && duration >= 1000000ns && duration <= 2000000000ns }"#
        );
        crate::traceql::check(&search.traceql("frontend")).expect("valid TraceQL");
    }

    #[test]
    fn jaegers_refusals_keep_jaegers_words() {
        let search = |query: &str| Params::parse(Some(query)).search(0).map(|_| ()).unwrap_err().to_string();
        assert_eq!(search("minDuration=2s&maxDuration=1s"), "'maxDuration' should be greater than 'minDuration'");
        assert_eq!(search("minDuration=100"), "unable to parse param 'minDuration': time: invalid duration \"100\"");
        assert_eq!(search("tag=justakey"), "malformed 'tag' parameter, expecting key:value, received: justakey");
        assert!(search("tags=%7B%22a%22%3A1%7D").starts_with("malformed 'tags' parameter, cannot unmarshal JSON"));
        assert!(search("start=yesterday").starts_with("unable to parse param 'start'"));
        assert!(search("traceID=zz").starts_with("cannot parse traceID param"));
    }

    #[test]
    fn default_window_is_the_last_48_hours_and_limit_100() {
        let search = Params::parse(Some("service=a")).search(1_000_000_000_000_000).unwrap();
        assert_eq!(search.end_micros - search.start_micros, 48 * 3_600 * 1_000_000);
        assert_eq!(search.limit, 100);
    }

    #[test]
    fn trace_by_id_times_are_microseconds_or_grafanas_milliseconds() {
        let micros = Params::parse(Some("start=1735689600000000&end=1735689601000000")).lookup_window().unwrap();
        let millis = Params::parse(Some("start=1735689600000&end=1735689601000")).lookup_window().unwrap();
        assert_eq!(micros, millis);
        assert_eq!(
            micros,
            TimeWindow::from_unix_nanos(Some(1_735_689_600_000_000_000), Some(1_735_689_601_000_999_999))
        );
    }

    #[test]
    fn odd_tag_names_are_quoted() {
        assert_eq!(attribute("http.route"), ".http.route");
        assert_eq!(attribute("my key"), r#"."my key""#);
        let search = Params::parse(Some("service=a&tag=my%20key:x%22y")).search(0).unwrap();
        crate::traceql::check(&search.traceql("a")).expect("valid TraceQL");
    }
}
