//! Tempo's search (issue 24) against a reference: random TraceQL spanset filters over a generated data
//! set (a few hundred traces, in two flushed blocks and the ingester, a few without their root) are
//! answered by the engine through `GET /api/search` and by the plain evaluator below, which reads the
//! spans as they were sent and shares no code with `spanlake::search`. Both must select the same traces
//! and, in each, the same spans. A mismatch is shrunk to a smaller query that still disagrees, then
//! printed with both answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Backend;
use common::search::{Attr, Attrs, Service, Span, flush, search, send_spans, url_encode};
use common::server::TestServer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const SEED: u64 = 24;
const TRACES: usize = 300;
const QUERIES: usize = 200;

const SERVICES: &[&str] = &["frontend", "checkout", "payments", "db", "queue"];
const NAMES: &[&str] = &["GET /", "POST /pay", "charge", "SELECT", "publish", "consume", "render", "cache get"];
const KINDS: &[&str] = &["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUSES: &[&str] = &["unset", "ok", "error"];
const METHODS: &[&str] = &["GET", "POST", "PUT"];
const CODES: &[i64] = &[200, 201, 404, 500, 503];
const REGIONS: &[&str] = &["eu", "us", "ap"];
/// Span durations, so that equality with a duration literal can hold.
const DURATIONS_MS: &[i64] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
const REGEXES: &[&str] = &["G.*", "P.*|GET", "e.*", "(eu|us)", ".*a.*", "SELECT|render", "P"];

// ---------------------------------------------------------------------------------------------------
// The data set.

fn services(rng: &mut SmallRng) -> Vec<Service> {
    SERVICES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut resource = Attrs::new();
            if i != 3 {
                resource.push(("region".into(), Attr::Str(REGIONS[rng.random_range(0..REGIONS.len())].into())));
            }
            if i % 2 == 0 {
                resource.push(("tier".into(), Attr::Str(["gold", "silver"][i % 4 / 2].into())));
            }
            resource.push(("host.cores".into(), Attr::Int([2, 4, 8, 16, 32][i])));
            Service {
                name: (*name).into(),
                scope_name: "differential".into(),
                scope_version: "1".into(),
                scope_attributes: Attrs::new(),
                resource,
            }
        })
        .collect()
}

fn pick<'a>(rng: &mut SmallRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// `TRACES` traces of 1 to 8 spans in random trees; about one in twenty loses its root.
fn traces(rng: &mut SmallRng, base: i64) -> Vec<Vec<Span>> {
    (0..TRACES)
        .map(|t| {
            let trace_id = format!("{:032x}", rng.random::<u128>());
            let start = base + t as i64 * 1_000_000_000;
            let count = rng.random_range(1..=8);
            let mut spans: Vec<Span> = Vec::new();
            for s in 0..count {
                let mut attributes = Attrs::new();
                if rng.random_bool(0.7) {
                    attributes.push(("http.method".into(), Attr::Str(pick(rng, METHODS).into())));
                }
                if rng.random_bool(0.6) {
                    attributes.push(("http.status_code".into(), Attr::Int(CODES[rng.random_range(0..CODES.len())])));
                }
                if rng.random_bool(0.3) {
                    attributes.push(("retry".into(), Attr::Bool(rng.random())));
                }
                if rng.random_bool(0.15) {
                    attributes.push(("region".into(), Attr::Str(pick(rng, REGIONS).into())));
                }
                let status = pick(rng, STATUSES);
                spans.push(Span {
                    trace_id: trace_id.clone(),
                    span_id: format!("{:016x}", rng.random::<u64>() | 1),
                    parent_span_id: (s > 0).then(|| spans[rng.random_range(0..s)].span_id.clone()),
                    service: pick(rng, SERVICES).into(),
                    name: pick(rng, NAMES).into(),
                    kind: pick(rng, KINDS).into(),
                    status: status.into(),
                    message: if status == "error" { "failed".into() } else { String::new() },
                    start_unix_nano: start + s as i64 * 1_000_000,
                    duration_nanos: DURATIONS_MS[rng.random_range(0..DURATIONS_MS.len())] * 1_000_000,
                    attributes,
                    events: Vec::new(),
                    links: Vec::new(),
                });
            }
            if count > 1 && rng.random_bool(0.05) {
                spans.remove(0);
            }
            spans
        })
        .collect()
}

/// A server holding `traces`: a third in each of two blocks and the ingester, and a quarter of the
/// traces spread span by span over all three.
async fn loaded_server(
    backend: &Backend,
    rng: &mut SmallRng,
    services: &[Service],
    traces: &[Vec<Span>],
) -> TestServer {
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    let mut parts: [Vec<&Span>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (t, spans) in traces.iter().enumerate() {
        let spread = rng.random_bool(0.25);
        for span in spans {
            parts[if spread { rng.random_range(0..3) } else { t % 3 }].push(span);
        }
    }
    for (i, part) in parts.iter().enumerate() {
        send_spans(&server, services, part).await;
        if i < 2 {
            flush(&server).await;
        }
    }
    server
}

// ---------------------------------------------------------------------------------------------------
// Queries and the reference evaluator.

#[derive(Clone, Debug)]
enum Field {
    Name,
    Status,
    Kind,
    Duration,
    Span(&'static str),
    Resource(&'static str),
    Unscoped(&'static str),
}

#[derive(Clone, Debug)]
enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Milliseconds.
    Duration(i64),
    Keyword(&'static str),
    Nil,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Regex,
    NotRegex,
}

#[derive(Clone, Debug)]
enum Condition {
    Compare(Field, Op, Literal),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Relation {
    Child,
    Descendant,
    Sibling,
    /// `!>`, `!>>`: right spans with no such relation to any left span (also when there is none).
    NotChild,
    NotDescendant,
    /// `&>>`: both ends of each descendant relation.
    UnionDescendant,
    /// Spanset `&&`: both sides in the trace, both sides' spans.
    Both,
}

#[derive(Clone, Debug)]
enum Query {
    Filter(Condition),
    Structural(Condition, Relation, Condition),
}

impl Field {
    fn text(&self) -> String {
        match self {
            Field::Name => "name".into(),
            Field::Status => "status".into(),
            Field::Kind => "kind".into(),
            Field::Duration => "duration".into(),
            Field::Span(name) => format!("span.{name}"),
            Field::Resource(name) => format!("resource.{name}"),
            Field::Unscoped(name) => format!(".{name}"),
        }
    }
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

impl Literal {
    fn text(&self) -> String {
        match self {
            Literal::Str(s) => format!("{s:?}"),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => format!("{f:?}"),
            Literal::Bool(b) => b.to_string(),
            Literal::Duration(ms) => format!("{ms}ms"),
            Literal::Keyword(k) => (*k).into(),
            Literal::Nil => "nil".into(),
        }
    }
}

impl Condition {
    fn text(&self) -> String {
        match self {
            Condition::Compare(field, op, literal) => format!("{} {} {}", field.text(), op.text(), literal.text()),
            Condition::And(a, b) => format!("({} && {})", a.text(), b.text()),
            Condition::Or(a, b) => format!("({} || {})", a.text(), b.text()),
        }
    }
}

impl Query {
    fn text(&self) -> String {
        match self {
            Query::Filter(c) => format!("{{{}}}", c.text()),
            Query::Structural(l, relation, r) => {
                let op = match relation {
                    Relation::Child => ">",
                    Relation::Descendant => ">>",
                    Relation::Sibling => "~",
                    Relation::NotChild => "!>",
                    Relation::NotDescendant => "!>>",
                    Relation::UnionDescendant => "&>>",
                    Relation::Both => "&&",
                };
                format!("{{{}}} {op} {{{}}}", l.text(), r.text())
            }
        }
    }
}

fn comparison(rng: &mut SmallRng) -> Condition {
    let ops_equal = [Op::Eq, Op::Neq];
    let ops_order = [Op::Eq, Op::Neq, Op::Lt, Op::Lte, Op::Gt, Op::Gte];
    let ops_text = [Op::Eq, Op::Neq, Op::Regex, Op::NotRegex];
    let choose = |rng: &mut SmallRng, ops: &[Op]| ops[rng.random_range(0..ops.len())];
    let string_literal = |rng: &mut SmallRng, op: Op, values: &[&str]| match op {
        Op::Regex | Op::NotRegex => Literal::Str(pick(rng, REGEXES).into()),
        _ => Literal::Str(pick(rng, values).into()),
    };
    match rng.random_range(0..13) {
        0 => {
            let op = choose(rng, &ops_text);
            Condition::Compare(Field::Name, op, string_literal(rng, op, NAMES))
        }
        1 => Condition::Compare(Field::Status, choose(rng, &ops_equal), Literal::Keyword(pick(rng, STATUSES))),
        2 => Condition::Compare(Field::Kind, choose(rng, &ops_equal), Literal::Keyword(pick(rng, KINDS))),
        3 => {
            let ms = DURATIONS_MS[rng.random_range(0..DURATIONS_MS.len())];
            Condition::Compare(Field::Duration, choose(rng, &ops_order), Literal::Duration(ms))
        }
        4 | 5 => {
            let op = choose(rng, &ops_text);
            let field = if rng.random_bool(0.5) { Field::Span("http.method") } else { Field::Unscoped("http.method") };
            Condition::Compare(field, op, string_literal(rng, op, METHODS))
        }
        6 | 7 => {
            let code = CODES[rng.random_range(0..CODES.len())];
            // An int attribute also meets float literals.
            let literal = match rng.random_range(0..3) {
                0 => Literal::Float(code as f64),
                1 => Literal::Float(code as f64 + 0.5),
                _ => Literal::Int(code),
            };
            Condition::Compare(Field::Span("http.status_code"), choose(rng, &ops_order), literal)
        }
        8 => Condition::Compare(Field::Span("retry"), choose(rng, &ops_equal), Literal::Bool(rng.random())),
        9 => {
            let op = choose(rng, &ops_text);
            let field = match rng.random_range(0..3) {
                0 => Field::Span("region"),
                1 => Field::Resource("region"),
                _ => Field::Unscoped("region"),
            };
            Condition::Compare(field, op, string_literal(rng, op, REGIONS))
        }
        10 => {
            let field = if rng.random_bool(0.5) { Field::Resource("tier") } else { Field::Unscoped("tier") };
            Condition::Compare(field, choose(rng, &ops_equal), Literal::Str(pick(rng, &["gold", "silver"]).into()))
        }
        11 => Condition::Compare(
            Field::Resource("host.cores"),
            choose(rng, &ops_order),
            Literal::Int([2, 4, 8, 16, 32][rng.random_range(0..5)]),
        ),
        _ => {
            let field = match rng.random_range(0..5) {
                0 => Field::Span("region"),
                1 => Field::Unscoped("region"),
                2 => Field::Span("retry"),
                3 => Field::Resource("tier"),
                _ => Field::Span("http.status_code"),
            };
            Condition::Compare(field, choose(rng, &ops_equal), Literal::Nil)
        }
    }
}

fn condition(rng: &mut SmallRng, depth: u32) -> Condition {
    if depth == 0 || rng.random_bool(0.45) {
        return comparison(rng);
    }
    let (a, b) = (condition(rng, depth - 1), condition(rng, depth - 1));
    if rng.random_bool(0.5) {
        Condition::And(Box::new(a), Box::new(b))
    } else {
        Condition::Or(Box::new(a), Box::new(b))
    }
}

fn query(rng: &mut SmallRng) -> Query {
    if rng.random_bool(0.75) {
        return Query::Filter(condition(rng, 2));
    }
    let relations = [
        Relation::Child,
        Relation::Descendant,
        Relation::Sibling,
        Relation::NotChild,
        Relation::NotDescendant,
        Relation::UnionDescendant,
        Relation::Both,
    ];
    let relation = relations[rng.random_range(0..relations.len())];
    Query::Structural(condition(rng, 1), relation, condition(rng, 1))
}

/// The spans of one trace with their resources, as the reference reads them.
struct RefTrace<'a> {
    spans: &'a [Span],
    resources: &'a BTreeMap<String, Attrs>,
}

fn find<'a>(attributes: &'a Attrs, name: &str) -> Option<&'a Attr> {
    attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl RefTrace<'_> {
    fn attribute(&self, i: usize, field: &Field) -> Option<Attr> {
        let span = &self.spans[i];
        let resource = &self.resources[&span.service];
        let mut resource = resource.clone();
        resource.push(("service.name".into(), Attr::Str(span.service.clone())));
        match field {
            Field::Span(name) => find(&span.attributes, name).cloned(),
            Field::Resource(name) => find(&resource, name).cloned(),
            Field::Unscoped(name) => find(&span.attributes, name).or_else(|| find(&resource, name)).cloned(),
            Field::Name => Some(Attr::Str(span.name.clone())),
            Field::Status => Some(Attr::Str(span.status.clone())),
            Field::Kind => Some(Attr::Str(span.kind.clone())),
            Field::Duration => Some(Attr::Int(span.duration_nanos)),
        }
    }

    fn holds(&self, i: usize, condition: &Condition) -> bool {
        match condition {
            Condition::And(a, b) => self.holds(i, a) && self.holds(i, b),
            Condition::Or(a, b) => self.holds(i, a) || self.holds(i, b),
            Condition::Compare(field, op, literal) => {
                let value = self.attribute(i, field);
                match (value, literal) {
                    (value, Literal::Nil) => (value.is_none()) == (*op == Op::Eq),
                    (None, _) => false,
                    (Some(Attr::Str(s)), Literal::Str(l)) => match op {
                        Op::Eq => s == *l,
                        Op::Neq => s != *l,
                        Op::Regex | Op::NotRegex => {
                            let regex = regex::Regex::new(&format!("^(?:{l})$")).expect("a valid pattern");
                            regex.is_match(&s) == (*op == Op::Regex)
                        }
                        _ => unreachable!("strings are only compared for equality and patterns"),
                    },
                    (Some(Attr::Str(s)), Literal::Keyword(k)) => (s == *k) == (*op == Op::Eq),
                    (Some(Attr::Bool(b)), Literal::Bool(l)) => (b == *l) == (*op == Op::Eq),
                    (Some(Attr::Int(v)), number) => {
                        let (x, y) = match number {
                            Literal::Int(l) => (v as f64, *l as f64),
                            Literal::Float(l) => (v as f64, *l),
                            Literal::Duration(ms) => (v as f64, (*ms * 1_000_000) as f64),
                            other => unreachable!("an int against {other:?}"),
                        };
                        match op {
                            Op::Eq => x == y,
                            Op::Neq => x != y,
                            Op::Lt => x < y,
                            Op::Lte => x <= y,
                            Op::Gt => x > y,
                            Op::Gte => x >= y,
                            _ => unreachable!("numbers are not matched with patterns"),
                        }
                    }
                    (value, literal) => unreachable!("{value:?} against {literal:?}"),
                }
            }
        }
    }

    /// The parent of span `i`, if it was received.
    fn parent(&self, i: usize) -> Option<usize> {
        let parent = self.spans[i].parent_span_id.as_ref()?;
        self.spans.iter().position(|s| &s.span_id == parent)
    }

    fn is_descendant(&self, i: usize, ancestor: usize) -> bool {
        let mut current = self.parent(i);
        while let Some(p) = current {
            if p == ancestor {
                return true;
            }
            current = self.parent(p);
        }
        false
    }

    /// The span IDs the query selects in this trace.
    fn select(&self, query: &Query) -> BTreeSet<String> {
        let matching = |c: &Condition| -> Vec<usize> { (0..self.spans.len()).filter(|&i| self.holds(i, c)).collect() };
        let ids = |indices: Vec<usize>| indices.into_iter().map(|i| self.spans[i].span_id.clone()).collect();
        match query {
            Query::Filter(c) => ids(matching(c)),
            Query::Structural(l, relation, r) => {
                let (left, right) = (matching(l), matching(r));
                if *relation == Relation::Both {
                    if left.is_empty() || right.is_empty() {
                        return BTreeSet::new();
                    }
                    return ids(left.into_iter().chain(right).collect());
                }
                let related = |a: usize, b: usize| match relation {
                    Relation::Child | Relation::NotChild => self.parent(b) == Some(a),
                    Relation::Descendant | Relation::NotDescendant | Relation::UnionDescendant => {
                        self.is_descendant(b, a)
                    }
                    Relation::Sibling => a != b && self.parent(a).is_some() && self.parent(a) == self.parent(b),
                    Relation::Both => unreachable!(),
                };
                match relation {
                    Relation::NotChild | Relation::NotDescendant => {
                        ids(right.into_iter().filter(|&b| !left.iter().any(|&a| related(a, b))).collect())
                    }
                    Relation::UnionDescendant => {
                        let mut kept = Vec::new();
                        for &b in &right {
                            for &a in &left {
                                if related(a, b) {
                                    kept.extend([a, b]);
                                }
                            }
                        }
                        ids(kept)
                    }
                    _ => ids(right.into_iter().filter(|&b| left.iter().any(|&a| related(a, b))).collect()),
                }
            }
        }
    }
}

/// The reference answer: trace ID to the span IDs selected.
fn reference(
    traces: &[Vec<Span>],
    resources: &BTreeMap<String, Attrs>,
    query: &Query,
) -> BTreeMap<String, BTreeSet<String>> {
    traces
        .iter()
        .filter(|spans| !spans.is_empty())
        .map(|spans| (spans[0].trace_id.clone(), RefTrace { spans, resources }.select(query)))
        .filter(|(_, selected)| !selected.is_empty())
        .collect()
}

/// The engine's answer in the same form.
async fn engine(server: &TestServer, query: &Query) -> BTreeMap<String, BTreeSet<String>> {
    let request = format!("q={}&limit=10000&spss=10000", url_encode(&query.text()));
    let (status, text, body) = search(server, &request).await;
    assert_eq!(status, 200, "{}: {text}", query.text());
    let mut answer = BTreeMap::new();
    for trace in body["traces"].as_array().expect("traces") {
        let id = format!("{:0>32}", trace["traceID"].as_str().expect("traceID"));
        let spans = trace["spanSets"].as_array().cloned().unwrap_or_default();
        let ids: BTreeSet<String> = spans
            .iter()
            .flat_map(|set| set["spans"].as_array().cloned().unwrap_or_default())
            .map(|span: Value| span["spanID"].as_str().expect("spanID").to_owned())
            .collect();
        answer.insert(id, ids);
    }
    answer
}

/// Smaller queries to try when `query` disagrees: each side of a structural query alone, each operand
/// of a conjunction or disjunction in place of it.
fn smaller(query: &Query) -> Vec<Query> {
    fn conditions(c: &Condition) -> Vec<Condition> {
        match c {
            Condition::Compare(..) => Vec::new(),
            Condition::And(a, b) | Condition::Or(a, b) => {
                let mut out = vec![(**a).clone(), (**b).clone()];
                let rebuild = |a: Condition, b: Condition| match c {
                    Condition::And(..) => Condition::And(Box::new(a), Box::new(b)),
                    _ => Condition::Or(Box::new(a), Box::new(b)),
                };
                out.extend(conditions(a).into_iter().map(|a2| rebuild(a2, (**b).clone())));
                out.extend(conditions(b).into_iter().map(|b2| rebuild((**a).clone(), b2)));
                out
            }
        }
    }
    match query {
        Query::Filter(c) => conditions(c).into_iter().map(Query::Filter).collect(),
        Query::Structural(l, relation, r) => {
            let mut out = vec![Query::Filter(l.clone()), Query::Filter(r.clone())];
            out.extend(conditions(l).into_iter().map(|l2| Query::Structural(l2, *relation, r.clone())));
            out.extend(conditions(r).into_iter().map(|r2| Query::Structural(l.clone(), *relation, r2)));
            out
        }
    }
}

fn difference(want: &BTreeMap<String, BTreeSet<String>>, got: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut lines = Vec::new();
    for id in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
        let (w, g) = (want.get(id), got.get(id));
        if w != g {
            lines.push(format!("  trace {id}: reference {w:?}, engine {g:?}"));
        }
    }
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_filters_select_what_a_reference_evaluator_selects() {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let base = common::hours_ago_unix_nano(3) as i64;
    let services = services(&mut rng);
    let traces = traces(&mut rng, base);
    let resources: BTreeMap<String, Attrs> = services.iter().map(|s| (s.name.clone(), s.resource.clone())).collect();
    let backend = Backend::local();
    let server = loaded_server(&backend, &mut rng, &services, &traces).await;

    let mut matched_somewhere = 0;
    for _ in 0..QUERIES {
        let mut query = query(&mut rng);
        let want = reference(&traces, &resources, &query);
        let got = engine(&server, &query).await;
        if want == got {
            matched_somewhere += usize::from(!want.is_empty());
            continue;
        }
        let (mut want, mut got) = (want, got);
        'shrink: loop {
            for candidate in smaller(&query) {
                let (w, g) = (reference(&traces, &resources, &candidate), engine(&server, &candidate).await);
                if w != g {
                    (query, want, got) = (candidate, w, g);
                    continue 'shrink;
                }
            }
            break;
        }
        panic!("the engine and the reference disagree on {} (seed {SEED}):\n{}", query.text(), difference(&want, &got));
    }
    // The queries must be worth something: most select some spans.
    assert!(matched_somewhere > QUERIES / 2, "only {matched_somewhere} of {QUERIES} queries matched anything");
}
