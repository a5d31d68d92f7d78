//! Tempo's search (issue 24) as golden files anyone can read: `tests/search/*.txt`, each a list of
//! TraceQL (or logfmt tags) queries and the answers they must get from `GET /api/search` of a real
//! server, over the data set in `tests/fixtures/search/traces.txt` (its header describes it): part in two
//! flushed blocks, part still in the ingester. Every expected answer was worked out by hand from that
//! data set and TraceQL's meaning (Tempo's), not copied from the engine.
//!
//! # The golden file format
//!
//! Cases are separated by blank lines; `#` starts a comment line. A case is:
//!
//! ```text
//! query: <TraceQL>                 (or)  tags: <logfmt>        the request's q or tags
//! params: limit=2 spss=1 minDuration=100ms maxDuration=1s start=+35s end=+55s
//!                                  optional; start/end are offsets from the data set's base time,
//!                                  sent as unix seconds; spss defaults to 1000 (every matched span)
//! traces: c b a                    the trace IDs returned, in order (Tempo's form, no leading zeros);
//!                                  nothing after the colon: no trace matches
//! spans: 1: 0103 0104              optional, one line per spanset: the span IDs it holds (any order);
//!                                  when a case has spans lines, every trace returned must have them
//! shows: 0101 http.route = "/checkout"
//!                                  optional: span 0101 carries this attribute in the answer
//!                                  ("text", 12, 1.5, true)
//! root: 3 <root span not yet received>
//!                                  optional: trace 3's rootServiceName and rootTraceName
//! error: 400 <text>                instead of traces: the status, and text the reason contains
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Backend;
use common::search::{Attr, Attrs, Event, Link, Service, Span, flush, search, send_spans, trace_ids, url_encode};
use common::server::TestServer;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------
// The data set.

/// Where a span is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Block1,
    Block2,
    Ingester,
}

struct DataSet {
    services: Vec<Service>,
    /// Each span with where it goes, and whether it is sent again with the ingester part.
    spans: Vec<(Span, Part, bool)>,
}

/// Splits a line into words; double quotes group (and are kept), so `name="GET /x"` is one word.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `key=value` with quotes removed from both (`span."with space"="yes"` is `span.with space`, `yes`).
fn key_value(word: &str) -> (String, String) {
    let mut quoted = false;
    let split = word
        .char_indices()
        .find(|(_, c)| {
            if *c == '"' {
                quoted = !quoted;
            }
            *c == '=' && !quoted
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{word:?} is not key=value"));
    (word[..split].replace('"', ""), word[split + 1..].to_owned())
}

fn unquote(value: &str) -> String {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{value:?} is not quoted"))
        .into()
}

fn attr(value: &str) -> Attr {
    if value.starts_with('"') {
        Attr::Str(unquote(value))
    } else if value == "true" || value == "false" {
        Attr::Bool(value == "true")
    } else if value.contains('.') {
        Attr::Double(value.parse().unwrap_or_else(|_| panic!("{value:?} is not a double")))
    } else {
        Attr::Int(value.parse().unwrap_or_else(|_| panic!("{value:?} is not an int")))
    }
}

/// `250ms`, `90s`, `950ns`, `+35s` in nanoseconds.
fn nanos(text: &str) -> i64 {
    let text = text.trim_start_matches('+');
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or_else(|| panic!("{text:?} has no unit"));
    let number: i64 = text[..digits].parse().unwrap_or_else(|_| panic!("{text:?} is not a duration"));
    let unit = match &text[digits..] {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        other => panic!("unknown unit {other:?}"),
    };
    number * unit
}

fn part(text: &str) -> Part {
    match text {
        "block1" => Part::Block1,
        "block2" => Part::Block2,
        "ingester" => Part::Ingester,
        other => panic!("unknown part {other:?}"),
    }
}

fn trace_hex(id: &str) -> String {
    format!("{id:0>32}")
}

fn span_hex(id: &str) -> String {
    format!("{id:0>16}")
}

/// Reads the data set, with times from `base` (unix ns).
fn data_set(base: i64) -> DataSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search/traces.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut services = Vec::new();
    let mut spans: Vec<(Span, Part, bool)> = Vec::new();
    let (mut trace_id, mut trace_start, mut trace_part) = (String::new(), 0i64, Part::Block1);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let words = words(line);
        match words[0].as_str() {
            "service" => {
                let mut service = Service {
                    name: words[1].clone(),
                    scope_name: String::new(),
                    scope_version: String::new(),
                    scope_attributes: Vec::new(),
                    resource: Vec::new(),
                };
                for (key, value) in words[2..].iter().map(|w| key_value(w)) {
                    if key == "scope" {
                        let (name, version) = value.split_once('@').expect("scope=name@version");
                        (service.scope_name, service.scope_version) = (name.into(), version.into());
                    } else if let Some(key) = key.strip_prefix("scope.") {
                        service.scope_attributes.push((key.into(), attr(&value)));
                    } else if let Some(key) = key.strip_prefix("resource.") {
                        service.resource.push((key.into(), attr(&value)));
                    } else {
                        panic!("unknown service field {key}");
                    }
                }
                services.push(service);
            }
            "trace" => {
                trace_id = trace_hex(&words[1]);
                let fields: BTreeMap<String, String> = words[2..].iter().map(|w| key_value(w)).collect();
                trace_start = base + nanos(&fields["at"]);
                trace_part = part(&fields["in"]);
            }
            "span" => {
                let mut span = Span {
                    trace_id: trace_id.clone(),
                    span_id: span_hex(&words[1]),
                    parent_span_id: None,
                    service: String::new(),
                    name: String::new(),
                    kind: String::new(),
                    status: String::new(),
                    message: String::new(),
                    start_unix_nano: 0,
                    duration_nanos: 0,
                    attributes: Vec::new(),
                    events: Vec::new(),
                    links: Vec::new(),
                };
                let (mut span_part, mut duplicate) = (trace_part, false);
                for word in &words[2..] {
                    if word == "dup" {
                        duplicate = true;
                        continue;
                    }
                    let (key, value) = key_value(word);
                    match key.as_str() {
                        "parent" => span.parent_span_id = (value != "-").then(|| span_hex(&value)),
                        "service" => span.service = value,
                        "name" => span.name = unquote(&value),
                        "kind" => span.kind = value,
                        "status" => span.status = value,
                        "message" => span.message = unquote(&value),
                        "start" => span.start_unix_nano = trace_start + nanos(&value),
                        "dur" => span.duration_nanos = nanos(&value),
                        "in" => span_part = part(&value),
                        _ => {
                            let key = key.strip_prefix("span.").unwrap_or_else(|| panic!("unknown span field {key}"));
                            span.attributes.push((key.into(), attr(&value)));
                        }
                    }
                }
                spans.push((span, span_part, duplicate));
            }
            "event" => {
                let span = &mut spans.last_mut().expect("an event follows its span").0;
                let mut event = Event { name: unquote(&words[1]), time_unix_nano: 0, attributes: Attrs::new() };
                for (key, value) in words[2..].iter().map(|w| key_value(w)) {
                    match key.strip_prefix("event.") {
                        Some(key) => event.attributes.push((key.into(), attr(&value))),
                        None if key == "at" => event.time_unix_nano = span.start_unix_nano + nanos(&value),
                        None => panic!("unknown event field {key}"),
                    }
                }
                span.events.push(event);
            }
            "link" => {
                let span = &mut spans.last_mut().expect("a link follows its span").0;
                let attributes = words[3..]
                    .iter()
                    .map(|w| key_value(w))
                    .map(|(k, v)| (k.strip_prefix("link.").expect("link.<key>").to_owned(), attr(&v)))
                    .collect();
                span.links.push(Link { trace_id: trace_hex(&words[1]), span_id: span_hex(&words[2]), attributes });
            }
            other => panic!("unknown line {other:?} in the data set"),
        }
    }
    DataSet { services, spans }
}

/// The base of the data set's times: the start of the hour two hours ago (whole seconds), recent enough
/// for retention, fixed within a run.
fn base_unix_nano() -> i64 {
    common::hours_ago_unix_nano(2) as i64
}

/// A server holding the data set: block 1 flushed, block 2 flushed, the rest (and the duplicates) in the
/// ingester.
async fn loaded_server(backend: &Backend) -> TestServer {
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    let data = data_set(base_unix_nano());
    for part in [Part::Block1, Part::Block2, Part::Ingester] {
        let mut spans: Vec<&Span> = data.spans.iter().filter(|(_, p, _)| *p == part).map(|(s, _, _)| s).collect();
        if part == Part::Ingester {
            spans.extend(data.spans.iter().filter(|(_, _, duplicate)| *duplicate).map(|(s, _, _)| s));
        }
        send_spans(&server, &data.services, &spans).await;
        if part != Part::Ingester {
            flush(&server).await;
        }
    }
    server
}

// ---------------------------------------------------------------------------------------------------
// The golden files.

/// One case of a golden file.
#[derive(Debug, Default)]
struct Case {
    /// `file:line` of its first line.
    at: String,
    query: Option<String>,
    tags: Option<String>,
    params: Vec<(String, String)>,
    traces: Option<Vec<String>>,
    spans: BTreeMap<String, Vec<Vec<String>>>,
    shows: Vec<(String, String, Value)>,
    roots: Vec<(String, String)>,
    error: Option<(u16, String)>,
}

/// An attribute value as a golden file writes it, as the OTLP JSON the answer carries.
fn shown_value(text: &str) -> Value {
    match attr(text.trim()) {
        Attr::Int(i) => serde_json::json!({ "intValue": i.to_string() }),
        other => other.to_otlp(),
    }
}

fn parse_cases(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut cases = Vec::new();
    let mut case: Option<Case> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            cases.extend(case.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (directive, rest) = line.split_once(':').unwrap_or_else(|| panic!("{name}:{}: no directive", number + 1));
        let rest = rest.trim();
        let current = case.get_or_insert_with(|| Case { at: format!("{name}:{}", number + 1), ..Case::default() });
        match directive {
            "query" => current.query = Some(rest.to_owned()),
            "tags" => current.tags = Some(rest.to_owned()),
            "params" => {
                current.params = rest
                    .split_whitespace()
                    .map(|p| p.split_once('=').expect("params: key=value"))
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect()
            }
            "traces" => current.traces = Some(rest.split_whitespace().map(str::to_owned).collect()),
            "spans" => {
                let (trace, ids) = rest.split_once(':').expect("spans: <trace>: <span ids>");
                let mut ids: Vec<String> = ids.split_whitespace().map(span_hex).collect();
                ids.sort();
                current.spans.entry(trace.trim().to_owned()).or_default().push(ids);
            }
            "shows" => {
                let (span, attribute) = rest.split_once(' ').expect("shows: <span> <key> = <value>");
                let (key, value) = attribute.split_once(" = ").expect("shows: <span> <key> = <value>");
                current.shows.push((span_hex(span), key.trim().to_owned(), shown_value(value)));
            }
            "root" => {
                let (trace, root) = rest.split_once(' ').expect("root: <trace> <text>");
                current.roots.push((trace.to_owned(), root.trim().to_owned()));
            }
            "error" => {
                let (status, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                current.error = Some((status.parse().expect("error: <status> <text>"), reason.trim().to_owned()));
            }
            other => panic!("{name}:{}: unknown directive {other:?}", number + 1),
        }
    }
    cases.extend(case);
    cases
}

fn query_string(case: &Case, base_seconds: i64) -> String {
    let mut parts = Vec::new();
    if let Some(query) = &case.query {
        parts.push(format!("q={}", url_encode(query)));
    }
    if let Some(tags) = &case.tags {
        parts.push(format!("tags={}", url_encode(tags)));
    }
    if !case.params.iter().any(|(k, _)| k == "spss") {
        parts.push("spss=1000".to_owned());
    }
    for (key, value) in &case.params {
        let value = match (key.as_str(), value.strip_prefix('+')) {
            ("start" | "end", Some(offset)) => (base_seconds + nanos(offset) / 1_000_000_000).to_string(),
            _ => value.clone(),
        };
        parts.push(format!("{key}={}", url_encode(&value)));
    }
    parts.join("&")
}

/// The spansets of each returned trace: sorted span IDs, the sets sorted.
fn answer_spans(body: &Value) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut all = BTreeMap::new();
    for trace in body["traces"].as_array().unwrap() {
        let mut sets: Vec<Vec<String>> = trace["spanSets"]
            .as_array()
            .map(|sets| {
                sets.iter()
                    .map(|set| {
                        let mut ids: Vec<String> = set["spans"]
                            .as_array()
                            .map(|spans| spans.iter().map(|s| s["spanID"].as_str().unwrap().to_owned()).collect())
                            .unwrap_or_default();
                        ids.sort();
                        ids
                    })
                    .collect()
            })
            .unwrap_or_default();
        sets.sort();
        all.insert(trace["traceID"].as_str().unwrap().to_owned(), sets);
    }
    all
}

/// What is wrong with the answer to `case`, if anything.
async fn check(server: &TestServer, case: &Case, base_seconds: i64) -> Option<String> {
    let (status, text, body) = search(server, &query_string(case, base_seconds)).await;
    if let Some((want_status, reason)) = &case.error {
        let message = body["error"].as_str().unwrap_or(&text);
        if status != *want_status || !message.contains(reason.as_str()) {
            return Some(format!("want {want_status} containing {reason:?}, got {status} {text}"));
        }
        return None;
    }
    if status != 200 {
        return Some(format!("got {status} {text}"));
    }
    let mut problems = Vec::new();
    let got = trace_ids(&body);
    if let Some(want) = &case.traces
        && &got != want
    {
        problems.push(format!("traces: want {}, got {}", want.join(" "), got.join(" ")));
    }
    if !case.spans.is_empty() {
        let got_spans = answer_spans(&body);
        let mut want_spans = case.spans.clone();
        want_spans.values_mut().for_each(|sets| sets.sort());
        for trace in got.iter().filter(|t| !want_spans.contains_key(*t)) {
            problems.push(format!("trace {trace} returned with spans {:?} but has no spans line", got_spans[trace]));
        }
        for (trace, want) in &want_spans {
            if let Some(got) = got_spans.get(trace)
                && got != want
            {
                problems.push(format!("spans of {trace}: want {want:?}, got {got:?}"));
            }
        }
    }
    for (span_id, key, want) in &case.shows {
        let spans = body["traces"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["spanSets"].as_array().cloned().unwrap_or_default());
        let span = spans
            .flat_map(|set| set["spans"].as_array().cloned().unwrap_or_default())
            .find(|s| s["spanID"] == span_id.as_str());
        let value = span.as_ref().and_then(|s| {
            s["attributes"].as_array()?.iter().find(|kv| kv["key"] == key.as_str()).map(|kv| kv["value"].clone())
        });
        if value.as_ref() != Some(want) {
            problems.push(format!("span {span_id} should show {key} = {want}, shows {value:?} (span: {span:?})"));
        }
    }
    for (trace_id, root) in &case.roots {
        let trace = body["traces"].as_array().unwrap().iter().find(|t| t["traceID"] == trace_id.as_str());
        let names = trace.map(|t| (t["rootServiceName"].clone(), t["rootTraceName"].clone()));
        if names != Some((Value::String(root.clone()), Value::String(root.clone()))) {
            problems.push(format!("trace {trace_id}: root should be {root:?}, is {names:?}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("\n    "))
}

fn golden_files() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/search");
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_traceql_files_get_the_answers_written_in_them() {
    let backend = Backend::local();
    let server = loaded_server(&backend).await;
    let base_seconds = base_unix_nano() / 1_000_000_000;
    let mut failures = Vec::new();
    let mut count = 0;
    for file in golden_files() {
        for case in parse_cases(&file) {
            assert!(case.query.is_some() || case.tags.is_some(), "{}: a case needs query: or tags:", case.at);
            assert!(case.traces.is_some() != case.error.is_some(), "{}: a case needs traces: or error:", case.at);
            count += 1;
            if let Some(problem) = check(&server, &case, base_seconds).await {
                let request = case.query.as_deref().or(case.tags.as_deref()).unwrap_or_default();
                failures.push(format!("{} {request}\n    {problem}", case.at));
            }
        }
    }
    assert!(count > 100, "the golden files hold {count} cases");
    assert!(failures.is_empty(), "{} of {count} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// What Grafana reads of one result, field by field, with the types Tempo's jsonpb gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_result_has_the_json_shape_grafana_reads() {
    let backend = Backend::local();
    let server = loaded_server(&backend).await;
    let base = base_unix_nano();
    let query = format!("q={}&spss=1", url_encode("{span.http.status_code = 402}"));
    let (status, text, body) = search(&server, &query).await;
    assert_eq!(status, 200, "{text}");
    let traces = body["traces"].as_array().expect("traces is a list");
    assert_eq!(traces.len(), 1, "{body:#}");
    let trace = &traces[0];
    assert_eq!(trace["traceID"], "1", "trace IDs lose their leading zeros, as Tempo writes them");
    assert_eq!(trace["rootServiceName"], "frontend");
    assert_eq!(trace["rootTraceName"], "GET /checkout");
    assert_eq!(trace["startTimeUnixNano"], (base + 10_000_000_000).to_string(), "a string");
    assert_eq!(trace["durationMs"], 250, "a number");

    let set = &trace["spanSets"][0];
    assert_eq!(trace["spanSets"].as_array().map(Vec::len), Some(1));
    assert_eq!(set["matched"], 2, "0103 and 0104 match; spss=1 shows one");
    let spans = set["spans"].as_array().expect("spans is a list");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    // Either matched span may be the one shown; its fields must be its own.
    let (start_offset, duration, service) = match span["spanID"].as_str() {
        Some("0000000000000103") => (10_060_000_000i64, "150000000", "checkout"),
        Some("0000000000000104") => (10_070_000_000, "120000000", "payments"),
        other => panic!("spanID {other:?} is not a matched span as 16 hex digits"),
    };
    assert_eq!(span["startTimeUnixNano"], (base + start_offset).to_string());
    assert_eq!(span["durationNanos"], duration, "a string");
    assert!(span["name"] == "charge card" || span["name"] == "POST /charge", "{span}");
    let attributes = span["attributes"].as_array().expect("attributes are OTLP KeyValues");
    assert!(
        attributes.contains(&serde_json::json!({"key": "http.status_code", "value": {"intValue": "402"}})),
        "{span}"
    );
    assert!(
        attributes.contains(&serde_json::json!({"key": "service.name", "value": {"stringValue": service}})),
        "{span}"
    );
    assert_eq!(trace["spanSet"], *set, "the deprecated spanSet is the first of spanSets");

    // Every span of the trace counts, errors only where there are some (zero is left out).
    assert_eq!(
        trace["serviceStats"],
        serde_json::json!({
            "frontend": {"spanCount": 1},
            "checkout": {"spanCount": 2, "errorCount": 1},
            "payments": {"spanCount": 1, "errorCount": 1},
            "db": {"spanCount": 1},
        })
    );
    let inspected = body["metrics"]["inspectedBytes"].as_str().expect("inspectedBytes is a string");
    assert!(inspected.parse::<u64>().is_ok_and(|bytes| bytes > 0), "{inspected}");

    // The trace spread over both blocks and the ingester, one span stored twice: counted once.
    let (status, text, body) = search(&server, &format!("q={}", url_encode(r#"{name = "rank"}"#))).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["traces"][0]["traceID"], "4");
    assert_eq!(body["traces"][0]["durationMs"], 900);
    assert_eq!(
        body["traces"][0]["serviceStats"],
        serde_json::json!({ "frontend": {"spanCount": 1}, "search": {"spanCount": 4, "errorCount": 1} })
    );

    // A double and a bool keep their OTLP types.
    let query = format!("q={}", url_encode("{span.cart.total > 50.5} | select(span.cart.gift)"));
    let (status, text, body) = search(&server, &query).await;
    assert_eq!(status, 200, "{text}");
    let attributes = &body["traces"][0]["spanSets"][0]["spans"][0]["attributes"];
    let attributes = attributes.as_array().expect("attributes");
    assert!(attributes.contains(&serde_json::json!({"key": "cart.total", "value": {"doubleValue": 59.5}})), "{body}");
    assert!(attributes.contains(&serde_json::json!({"key": "cart.gift", "value": {"boolValue": false}})), "{body}");
}
