//! `spanlake search '<TraceQL>'`: Tempo's search from the terminal, from a server (`GET /api/search`) or
//! embedded over the blocks in storage, printed as a table of traces or as Tempo's JSON.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde_json::Value;
use spanlake::query::remote::fetch_search;
use spanlake::query::{Querier, QueryOptions};
use spanlake::search::{ROOT_NOT_RECEIVED, SearchParams, SearchRequest, SearchResponse, Searcher};
use spanlake::sql::{SqlEngine, SqlLimits};

use super::{CliError, Source, open_storage_url};

#[derive(Args)]
pub struct SearchArgs {
    /// The TraceQL query, e.g. '{ resource.service.name = "shop" && duration > 100ms }'.
    query: String,
    /// Only traces from this long before now until now (e.g. 15m, 1h, 2days).
    #[arg(long, conflicts_with_all = ["start", "end"])]
    since: Option<humantime::Duration>,
    /// Start of the window: RFC 3339 (2026-01-01T00:00:00Z) or unix seconds.
    #[arg(long, value_parser = unix_seconds)]
    start: Option<u64>,
    /// End of the window: RFC 3339 or unix seconds.
    #[arg(long, value_parser = unix_seconds)]
    end: Option<u64>,
    /// Traces to show at most (newest first).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Spans shown per spanset in the JSON (the table counts them all).
    #[arg(long, default_value_t = 3)]
    spss: usize,
    #[command(flatten)]
    source: Source,
    /// table (default) or json (Tempo's search answer).
    #[arg(long, default_value = "table")]
    format: SearchOutput,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SearchOutput {
    Table,
    Json,
}

/// A time as RFC 3339 or unix seconds.
fn unix_seconds(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|error| format!("{error}: expected RFC 3339 (2026-01-01T00:00:00Z) or unix seconds"))?;
    Ok(time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()))
}

impl SearchArgs {
    /// Tempo's search parameters for these arguments, as the server receives them.
    fn params(&self) -> SearchParams {
        let (start, end) = match self.since {
            Some(since) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                (Some(now.saturating_sub(*since).as_secs()), None)
            }
            None => (self.start, self.end),
        };
        SearchParams {
            q: Some(self.query.clone()),
            limit: Some(self.limit.to_string()),
            spss: Some(self.spss.to_string()),
            start: start.map(|s| s.to_string()),
            end: end.map(|s| s.to_string()),
            ..SearchParams::default()
        }
    }
}

/// Runs the search and prints the traces found.
pub async fn run(args: SearchArgs) -> Result<(), CliError> {
    let params = args.params();
    let caller = args.source.caller();
    let remote = async |server: &str| {
        let pairs: Vec<(&str, String)> = [
            ("q", params.q.clone()),
            ("limit", params.limit.clone()),
            ("spss", params.spss.clone()),
            ("start", params.start.clone()),
            ("end", params.end.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        let body = fetch_search(server, &caller, &pairs).await?;
        Ok(serde_json::from_slice::<Value>(&body).map_err(CliError::SearchAnswer))
    };
    let local = async |storage| embedded(&args, &params, storage).await.map(|answer| Ok(answer.to_json()));
    let answer = args.source.ask(remote, local).await??;
    let mut out = std::io::stdout().lock();
    match args.format {
        SearchOutput::Json => writeln!(out, "{answer}")?,
        SearchOutput::Table => write!(out, "{}", render_table(&rows(&answer)))?,
    }
    Ok(())
}

/// Without a server: the same search over the blocks in storage. The query is checked before storage is
/// opened, so a mistake in it is reported first.
async fn embedded(
    args: &SearchArgs,
    params: &SearchParams,
    storage: Option<String>,
) -> Result<SearchResponse, CliError> {
    let request = SearchRequest::from_params(params)?;
    let storage = open_storage_url(storage)?;
    let engine = SqlEngine::new(Querier::new(storage, QueryOptions::default()), SqlLimits::default())?;
    Ok(Searcher::new(engine).search(&args.source.tenant_or_default(), &request).await?)
}

/// One line of the table.
#[derive(Debug, PartialEq)]
struct Row {
    trace_id: String,
    start: String,
    root_service: String,
    root_name: String,
    duration: String,
    matched: u64,
}

/// A jsonpb number: Tempo writes 64-bit integers as strings, smaller ones as numbers, zeros not at all.
fn number(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.parse().unwrap_or(0),
        other => other.as_u64().unwrap_or(0),
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or(ROOT_NOT_RECEIVED).to_owned()
}

/// The table's rows from Tempo's JSON answer (the server's, or the embedded search's).
fn rows(answer: &Value) -> Vec<Row> {
    let traces = answer["traces"].as_array().map(Vec::as_slice).unwrap_or_default();
    traces
        .iter()
        .map(|trace| {
            let start_nanos = number(&trace["startTimeUnixNano"]);
            let start = UNIX_EPOCH + Duration::from_nanos(start_nanos);
            let matched =
                trace["spanSets"].as_array().map_or(0, |sets| sets.iter().map(|s| number(&s["matched"])).sum());
            Row {
                // Tempo leaves leading zeros out; the full ID is what `spanlake trace` and SQL show.
                trace_id: format!("{:0>32}", trace["traceID"].as_str().unwrap_or_default()),
                start: humantime::format_rfc3339_millis(start).to_string().replace('T', " ").replace('Z', " UTC"),
                root_service: text(&trace["rootServiceName"]),
                root_name: text(&trace["rootTraceName"]),
                duration: format_duration(number(&trace["durationMs"])),
                matched,
            }
        })
        .collect()
}

/// Milliseconds as people read them: `850ms`, `2.35s`, `3m12s`.
fn format_duration(millis: u64) -> String {
    match millis {
        0..1_000 => format!("{millis}ms"),
        1_000..60_000 => format!("{:.2}s", millis as f64 / 1000.0),
        _ => humantime::format_duration(Duration::from_secs(millis / 1000)).to_string().replace(' ', ""),
    }
}

/// The rows as an aligned text table, or a line saying nothing matched.
fn render_table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no traces found\n".to_owned();
    }
    let header = ["trace ID", "start (UTC)", "root service", "root name", "duration", "matched spans"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                row.trace_id.clone(),
                row.start.clone(),
                row.root_service.clone(),
                row.root_name.clone(),
                row.duration.clone(),
                row.matched.to_string(),
            ]
        })
        .collect();
    let width = |column: usize| {
        let widest = cells.iter().map(|line| unicode_width::UnicodeWidthStr::width(line[column].as_str())).max();
        widest.unwrap_or(0).max(header[column].len())
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |values: &[&str]| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(value, width)| {
                let pad = width.saturating_sub(unicode_width::UnicodeWidthStr::width(*value));
                format!("{value}{}", " ".repeat(pad))
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut table = line(&header);
    for row in &cells {
        table.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(unix_seconds("1700000000"), Ok(1_700_000_000));
        assert_eq!(unix_seconds("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(unix_seconds("yesterday").is_err());
    }

    #[test]
    fn tempos_json_becomes_a_table_of_traces() {
        let answer = serde_json::json!({"traces": [
            {"traceID": "ab", "rootServiceName": "shop", "rootTraceName": "GET /cart",
             "startTimeUnixNano": "1700000000123000000", "durationMs": 2350,
             "spanSets": [{"matched": 3}, {"matched": 1}]},
            {"traceID": "1", "startTimeUnixNano": "1700000000000000000"},
        ]});
        let rows = rows(&answer);
        assert_eq!(
            rows[0],
            Row {
                trace_id: format!("{:0>32}", "ab"),
                start: "2023-11-14 22:13:20.123 UTC".into(),
                root_service: "shop".into(),
                root_name: "GET /cart".into(),
                duration: "2.35s".into(),
                matched: 4,
            }
        );
        assert_eq!((rows[1].duration.as_str(), rows[1].matched), ("0ms", 0), "jsonpb leaves zeros out");
        assert_eq!(rows[1].root_service, ROOT_NOT_RECEIVED);
        let table = render_table(&rows);
        assert!(table.starts_with("trace ID  "), "{table}");
        assert_eq!(table.lines().count(), 3, "{table}");
        assert_eq!(render_table(&[]), "no traces found\n");
        assert_eq!(format_duration(192_000), "3m12s");
    }
}
