//! Evaluation of a TraceQL query over one whole trace: the spansets it selects, with the values Tempo
//! shows. This is the exact step; the SQL pushed down (`plan.rs`) only narrows which traces get here.
//!
//! Attribute values are stored as text (CONTRACTS §5), so a comparison reads them as the literal it meets:
//! as a number against a number (an int attribute matches a float literal, as in Tempo), as `true`/`false`
//! against a boolean, as text against a string.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;

use super::answer::AttributeValue;
use super::trace::{Event, Link, Trace};
use crate::traceql::ast::{
    Aggregate, AggregateFunction, Attribute, AttributeScope, BinaryOp, FieldExpr, FieldKind, Intrinsic, Kind, Pipeline,
    Query, ScalarExpr, ScalarFilter, SpansetExpr, SpansetOp, Stage, Static, Status, UnaryOp,
};

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    /// An attribute's stored text: its type is decided by what it is compared with.
    Text(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
}

impl Value {
    fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Duration(d) => Some(*d as f64),
            Value::Text(t) => numeric_text(t),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) | Value::Str(t) => Some(t),
            _ => None,
        }
    }

    fn truth(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// The value as an OTLP attribute value for the answer; `None` for nil.
    pub fn to_attribute(&self) -> Option<AttributeValue> {
        Some(match self {
            Value::Nil => return None,
            Value::Text(t) => typed_text(t),
            Value::Str(s) => AttributeValue::Str(s.clone()),
            Value::Int(i) => AttributeValue::Int(*i),
            Value::Float(f) => AttributeValue::Double(*f),
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::Duration(d) => AttributeValue::Int(*d),
            Value::Status(s) => AttributeValue::Str(s.keyword().to_owned()),
            Value::Kind(k) => AttributeValue::Str(k.keyword().to_owned()),
        })
    }

    /// A key for grouping by this value (`by()`).
    fn group_key(&self) -> String {
        match self {
            Value::Nil => "\0nil".to_owned(),
            Value::Text(t) | Value::Str(t) => format!("s{t}"),
            Value::Bool(b) => format!("b{b}"),
            Value::Status(s) => format!("s{}", s.keyword()),
            Value::Kind(k) => format!("s{}", k.keyword()),
            other => format!("n{}", other.number().unwrap_or(f64::NAN)),
        }
    }
}

/// The number stored text holds, if it is a number as the block format writes one: an int in decimal
/// (`500`), a double in Rust's shortest round-trip form (`500.0`, `1e21`). Anything else (`" 500"`,
/// `"0500"`) is text, which a number never equals: the same rule the pushed-down SQL follows
/// ([`number_renderings`]), so SQL never drops a span the evaluation would keep.
pub fn numeric_text(text: &str) -> Option<f64> {
    if let Ok(i) = text.parse::<i64>()
        && i.to_string() == text
    {
        return Some(i as f64);
    }
    let f = text.parse::<f64>().ok()?;
    (format!("{f:?}") == text).then_some(f)
}

/// Every text the block format may have stored for an int or double attribute equal to `number`.
pub fn number_renderings(number: f64) -> Vec<String> {
    let mut texts = vec![format!("{number:?}")];
    if number.fract() == 0.0 && number.abs() < 9.2e18 {
        texts.push(format!("{}", number as i64));
    }
    texts
}

/// Stored text typed as it most likely was sent (the text form loses the type).
fn typed_text(text: &str) -> AttributeValue {
    if let Ok(i) = text.parse::<i64>() {
        return AttributeValue::Int(i);
    }
    if text.contains(['.', 'e', 'E'])
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return AttributeValue::Double(f);
    }
    match text {
        "true" => AttributeValue::Bool(true),
        "false" => AttributeValue::Bool(false),
        _ => AttributeValue::Str(text.to_owned()),
    }
}

fn static_value(value: &Static) -> Value {
    match value {
        Static::Nil => Value::Nil,
        Static::Bool(b) => Value::Bool(*b),
        Static::Int(i) => Value::Int(*i),
        Static::Float(f) => Value::Float(*f),
        Static::Str(s) => Value::Str(s.clone()),
        Static::Duration(d) => Value::Duration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        Static::Status(s) => Value::Status(*s),
        Static::Kind(k) => Value::Kind(*k),
    }
}

/// A set of spans of one trace (indices into [`Trace::spans`], ascending) and the attributes the set
/// carries (`by()` keys).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spanset {
    pub spans: Vec<usize>,
    pub attributes: Vec<(String, Value)>,
}

/// Evaluates one query over traces; compiled regular expressions are kept across traces.
pub struct Evaluator<'q> {
    query: &'q Query,
    regexes: HashMap<String, Option<Regex>>,
}

/// Where an element-scoped field (`event.x`, `link:traceID`) is read: one event and one link of the span.
#[derive(Clone, Copy, Default)]
struct Element<'t> {
    event: Option<&'t Event>,
    link: Option<&'t Link>,
}

impl<'q> Evaluator<'q> {
    /// An evaluator of `query`.
    pub fn new(query: &'q Query) -> Self {
        Self { query, regexes: HashMap::new() }
    }

    /// The spansets the query selects in `trace`; empty when the trace does not match.
    pub fn spansets(&mut self, trace: &Trace) -> Vec<Spanset> {
        let all = Spanset { spans: (0..trace.spans.len()).collect(), attributes: Vec::new() };
        let query = self.query;
        self.pipeline(&query.pipeline, trace, vec![all]).into_iter().filter(|set| !set.spans.is_empty()).collect()
    }

    fn pipeline(&mut self, pipeline: &Pipeline, trace: &Trace, mut sets: Vec<Spanset>) -> Vec<Spanset> {
        for stage in &pipeline.stages {
            sets = match stage {
                Stage::Spanset(expr) => sets.iter().flat_map(|set| self.spanset(expr, trace, set)).collect(),
                Stage::ScalarFilter(filter) => {
                    sets.into_iter().filter(|set| self.scalar_filter(filter, trace, set)).collect()
                }
                Stage::By(fields) => sets.iter().flat_map(|set| self.group(fields, trace, set)).collect(),
                Stage::Select(_) => sets,
                Stage::Coalesce => {
                    let mut merged = Spanset::default();
                    for set in sets {
                        merged.spans.extend(set.spans);
                    }
                    merged.spans.sort_unstable();
                    merged.spans.dedup();
                    if merged.spans.is_empty() { Vec::new() } else { vec![merged] }
                }
            };
            if sets.is_empty() {
                break;
            }
        }
        sets
    }

    fn spanset(&mut self, expr: &SpansetExpr, trace: &Trace, input: &Spanset) -> Vec<Spanset> {
        match expr {
            SpansetExpr::Filter { condition, .. } => {
                let spans: Vec<usize> = match condition {
                    None => input.spans.clone(),
                    Some(condition) => {
                        input.spans.iter().copied().filter(|&i| self.holds(condition, trace, i)).collect()
                    }
                };
                if spans.is_empty() {
                    Vec::new()
                } else {
                    vec![Spanset { spans, attributes: input.attributes.clone() }]
                }
            }
            SpansetExpr::Pipeline(pipeline) => self.pipeline(pipeline, trace, vec![input.clone()]),
            SpansetExpr::Binary { op, left, right } => {
                let left = union(self.spanset(left, trace, input));
                let right = union(self.spanset(right, trace, input));
                let spans = combine(*op, trace, &left, &right);
                if spans.is_empty() {
                    Vec::new()
                } else {
                    vec![Spanset { spans, attributes: input.attributes.clone() }]
                }
            }
        }
    }

    fn group(&mut self, fields: &[FieldExpr], trace: &Trace, input: &Spanset) -> Vec<Spanset> {
        let mut groups: BTreeMap<Vec<String>, Spanset> = BTreeMap::new();
        for &i in &input.spans {
            let values: Vec<Value> = fields.iter().map(|f| self.value(f, trace, i, Element::default())).collect();
            let key: Vec<String> = values.iter().map(Value::group_key).collect();
            let group = groups.entry(key).or_insert_with(|| {
                let mut attributes = input.attributes.clone();
                for (field, value) in fields.iter().zip(&values) {
                    if *value != Value::Nil {
                        attributes.push((field.to_string(), value.clone()));
                    }
                }
                Spanset { spans: Vec::new(), attributes }
            });
            group.spans.push(i);
        }
        groups.into_values().collect()
    }

    fn scalar_filter(&mut self, filter: &ScalarFilter, trace: &Trace, set: &Spanset) -> bool {
        let left = self.scalar(&filter.left, trace, set);
        let right = self.scalar(&filter.right, trace, set);
        self.compare(&left, filter.op, &right)
    }

    fn scalar(&mut self, expr: &ScalarExpr, trace: &Trace, set: &Spanset) -> Value {
        match expr {
            ScalarExpr::Static(value, _) => static_value(value),
            ScalarExpr::Binary { op, left, right } => {
                let left = self.scalar(left, trace, set);
                let right = self.scalar(right, trace, set);
                arithmetic(*op, &left, &right)
            }
            ScalarExpr::Aggregate(aggregate) => self.aggregate(aggregate, trace, set),
        }
    }

    fn aggregate(&mut self, aggregate: &Aggregate, trace: &Trace, set: &Spanset) -> Value {
        if aggregate.function == AggregateFunction::Count {
            return Value::Int(set.spans.len() as i64);
        }
        let Some(field) = &aggregate.argument else { return Value::Nil };
        let values: Vec<Value> = set
            .spans
            .iter()
            .map(|&i| self.value(field, trace, i, Element::default()))
            .filter(|v| v.number().is_some())
            .collect();
        let Some(first) = values.first() else { return Value::Nil };
        let durations = matches!(first, Value::Duration(_));
        let numbers: Vec<f64> = values.iter().filter_map(Value::number).collect();
        let result = match aggregate.function {
            AggregateFunction::Avg => numbers.iter().sum::<f64>() / numbers.len() as f64,
            AggregateFunction::Sum => numbers.iter().sum(),
            AggregateFunction::Min => numbers.iter().copied().fold(f64::INFINITY, f64::min),
            AggregateFunction::Max => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            AggregateFunction::Count => numbers.len() as f64,
        };
        if durations { Value::Duration(result.round() as i64) } else { Value::Float(result) }
    }

    /// Whether `condition` holds for span `i`. A condition on event or link fields holds when it holds for
    /// one of the span's events (links), as Tempo reads `{event.x = "a"}`.
    fn holds(&mut self, condition: &FieldExpr, trace: &Trace, i: usize) -> bool {
        let (events, links) = element_scopes(condition);
        let span = &trace.spans[i];
        let event_choices: Vec<Option<&Event>> =
            if events && !span.events.is_empty() { span.events.iter().map(Some).collect() } else { vec![None] };
        let link_choices: Vec<Option<&Link>> =
            if links && !span.links.is_empty() { span.links.iter().map(Some).collect() } else { vec![None] };
        for event in &event_choices {
            for link in &link_choices {
                if self.value(condition, trace, i, Element { event: *event, link: *link }).truth() {
                    return true;
                }
            }
        }
        false
    }

    /// The value of `expr` for span `i`.
    fn value(&mut self, expr: &FieldExpr, trace: &Trace, i: usize, element: Element<'_>) -> Value {
        match &expr.kind {
            FieldKind::Static(value) => static_value(value),
            FieldKind::Attribute(attribute) => attribute_value(attribute, trace, i, element),
            FieldKind::Intrinsic(intrinsic) => intrinsic_value(*intrinsic, trace, i, element),
            FieldKind::Unary(UnaryOp::Not, inner) => match self.value(inner, trace, i, element) {
                Value::Bool(b) => Value::Bool(!b),
                Value::Text(t) if t == "true" || t == "false" => Value::Bool(t == "false"),
                _ => Value::Nil,
            },
            FieldKind::Unary(UnaryOp::Neg, inner) => match self.value(inner, trace, i, element) {
                Value::Int(v) => Value::Int(-v),
                Value::Duration(v) => Value::Duration(-v),
                other => other.number().map_or(Value::Nil, |n| Value::Float(-n)),
            },
            FieldKind::Binary(op, left, right) => {
                let left_value = self.value(left, trace, i, element);
                match op {
                    // `&&` and `||` short-circuit, so a missing attribute on one side does not hide the other.
                    BinaryOp::And if !left_value.truth() => Value::Bool(false),
                    BinaryOp::Or if left_value.truth() => Value::Bool(true),
                    BinaryOp::And | BinaryOp::Or => Value::Bool(self.value(right, trace, i, element).truth()),
                    op if op.is_arithmetic() => arithmetic(*op, &left_value, &self.value(right, trace, i, element)),
                    op => {
                        let right_value = self.value(right, trace, i, element);
                        let nil_literal =
                            [left, right].iter().any(|e| matches!(e.kind, FieldKind::Static(Static::Nil)));
                        // A missing attribute compares with nothing but `nil`: `{.x != 5}` wants an `x`.
                        if !nil_literal && (left_value == Value::Nil || right_value == Value::Nil) {
                            return Value::Bool(false);
                        }
                        Value::Bool(self.compare(&left_value, *op, &right_value))
                    }
                }
            }
        }
    }

    /// A comparison as TraceQL means it; anything that cannot be compared is false (nil included, but
    /// `= nil` and `!= nil` test presence).
    fn compare(&mut self, left: &Value, op: BinaryOp, right: &Value) -> bool {
        if matches!(left, Value::Nil) || matches!(right, Value::Nil) {
            let both = matches!(left, Value::Nil) && matches!(right, Value::Nil);
            return match op {
                BinaryOp::Eq => both,
                BinaryOp::Neq => !both,
                _ => false,
            };
        }
        if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
            let (Some(text), Some(pattern)) = (left.text(), right.text()) else { return false };
            let Some(regex) = self.regex(pattern) else { return false };
            return regex.is_match(text) == (op == BinaryOp::Regex);
        }
        let ordering = match (left, right) {
            (Value::Status(a), Value::Status(b)) => (a == b).then_some(Ordering::Equal).or(Some(Ordering::Less)),
            (Value::Kind(a), Value::Kind(b)) => (a == b).then_some(Ordering::Equal).or(Some(Ordering::Less)),
            (Value::Text(t), Value::Status(s)) | (Value::Status(s), Value::Text(t)) => {
                Some(if t == s.keyword() { Ordering::Equal } else { Ordering::Less })
            }
            (Value::Text(t), Value::Kind(k)) | (Value::Kind(k), Value::Text(t)) => {
                Some(if t == k.keyword() { Ordering::Equal } else { Ordering::Less })
            }
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Text(t), Value::Bool(b)) | (Value::Bool(b), Value::Text(t)) => match t.as_str() {
                "true" | "false" => Some(if (t == "true") == *b { Ordering::Equal } else { Ordering::Less }),
                _ => None,
            },
            (a, b) if a.text().is_some() && b.text().is_some() => a.text().map(|x| x.cmp(b.text().unwrap_or(""))),
            (a, b) if is_number(a) || is_number(b) => match (a.number(), b.number()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
            _ => None,
        };
        let Some(ordering) = ordering else { return false };
        // Status and kind only know equality; `Less` above stands for "different".
        match op {
            BinaryOp::Eq => ordering == Ordering::Equal,
            BinaryOp::Neq => ordering != Ordering::Equal,
            BinaryOp::Gt => ordering == Ordering::Greater,
            BinaryOp::Gte => ordering != Ordering::Less,
            BinaryOp::Lt => ordering == Ordering::Less,
            BinaryOp::Lte => ordering != Ordering::Greater,
            _ => false,
        }
    }

    /// A TraceQL regular expression, anchored at both ends as Tempo's are; `None` if it does not compile.
    fn regex(&mut self, pattern: &str) -> Option<&Regex> {
        self.regexes.entry(pattern.to_owned()).or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).ok()).as_ref()
    }
}

fn is_number(value: &Value) -> bool {
    matches!(value, Value::Int(_) | Value::Float(_) | Value::Duration(_))
}

fn arithmetic(op: BinaryOp, left: &Value, right: &Value) -> Value {
    let (Some(x), Some(y)) = (left.number(), right.number()) else { return Value::Nil };
    let result = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div if y != 0.0 => x / y,
        BinaryOp::Mod if y != 0.0 => x % y,
        BinaryOp::Pow => x.powf(y),
        _ => return Value::Nil,
    };
    let durations = matches!(left, Value::Duration(_)) || matches!(right, Value::Duration(_));
    let ints = matches!((left, right), (Value::Int(_), Value::Int(_)));
    if durations && matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div) {
        Value::Duration(result.round() as i64)
    } else if ints && result.fract() == 0.0 && result.abs() < 9.2e18 {
        Value::Int(result as i64)
    } else {
        Value::Float(result)
    }
}

fn union(sets: Vec<Spanset>) -> Vec<usize> {
    let mut spans: Vec<usize> = sets.into_iter().flat_map(|set| set.spans).collect();
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// The spans of `op` applied to the spans each side selected. Both sides must match for `&&`; the
/// structural operators return the right side's spans that stand in the relation (`!`: that do not) to
/// some span of the left side, and the `&` forms both sides' spans that do.
fn combine(op: SpansetOp, trace: &Trace, left: &[usize], right: &[usize]) -> Vec<usize> {
    use SpansetOp::*;
    match op {
        And if left.is_empty() || right.is_empty() => Vec::new(),
        And | Or => union(vec![
            Spanset { spans: left.to_vec(), attributes: Vec::new() },
            Spanset { spans: right.to_vec(), attributes: Vec::new() },
        ]),
        _ => {
            // `related(l, r)`: r stands in the relation to l.
            let related = |l: usize, r: usize| match op {
                Child | NotChild | UnionChild => trace.parent[r] == Some(l),
                Parent | NotParent | UnionParent => trace.parent[l] == Some(r),
                Descendant | NotDescendant | UnionDescendant => trace.is_descendant(r, l),
                Ancestor | NotAncestor | UnionAncestor => trace.is_descendant(l, r),
                Sibling | NotSibling | UnionSibling => {
                    l != r && trace.parent[l].is_some() && trace.parent[l] == trace.parent[r]
                }
                And | Or => false,
            };
            let negated = matches!(op, NotChild | NotParent | NotDescendant | NotAncestor | NotSibling);
            let both = matches!(op, UnionChild | UnionParent | UnionDescendant | UnionAncestor | UnionSibling);
            if negated {
                // With no left-side span in the trace, every right-side span qualifies, as in Tempo.
                return right.iter().copied().filter(|&r| !left.iter().any(|&l| related(l, r))).collect();
            }
            let mut kept: HashSet<usize> = HashSet::new();
            for &r in right {
                for &l in left {
                    if related(l, r) {
                        kept.insert(r);
                        if both {
                            kept.insert(l);
                        }
                    }
                }
            }
            let mut spans: Vec<usize> = kept.into_iter().collect();
            spans.sort_unstable();
            spans
        }
    }
}

/// Whether an expression reads event fields, link fields.
fn element_scopes(expr: &FieldExpr) -> (bool, bool) {
    match &expr.kind {
        FieldKind::Static(_) => (false, false),
        FieldKind::Attribute(a) => (a.scope == AttributeScope::Event, a.scope == AttributeScope::Link),
        FieldKind::Intrinsic(i) => (
            matches!(i, Intrinsic::EventName | Intrinsic::EventTimeSinceStart),
            matches!(i, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId),
        ),
        FieldKind::Unary(_, inner) => element_scopes(inner),
        FieldKind::Binary(_, l, r) => {
            let (a, b) = element_scopes(l);
            let (c, d) = element_scopes(r);
            (a || c, b || d)
        }
    }
}

fn lookup(attributes: &[(String, String)], name: &str) -> Value {
    attributes.iter().find(|(k, _)| k == name).map_or(Value::Nil, |(_, v)| Value::Text(v.clone()))
}

fn attribute_value(attribute: &Attribute, trace: &Trace, i: usize, element: Element<'_>) -> Value {
    let i = if attribute.parent {
        match trace.parent[i] {
            Some(p) => p,
            None => return Value::Nil,
        }
    } else {
        i
    };
    let span = &trace.spans[i];
    let name = attribute.name.as_str();
    match attribute.scope {
        AttributeScope::Span => lookup(&span.attributes, name),
        AttributeScope::Resource => lookup(&span.resource_attributes, name),
        AttributeScope::None => match lookup(&span.attributes, name) {
            Value::Nil => lookup(&span.resource_attributes, name),
            found => found,
        },
        AttributeScope::Event => element.event.map_or(Value::Nil, |e| lookup(&e.attributes, name)),
        AttributeScope::Link => element.link.map_or(Value::Nil, |l| lookup(&l.attributes, name)),
        // Scope attributes are not among the `spans` columns SQL shows (CONTRACTS §5).
        AttributeScope::Instrumentation => Value::Nil,
    }
}

fn parse_status(text: &str) -> Value {
    match text {
        "ok" => Value::Status(Status::Ok),
        "error" => Value::Status(Status::Error),
        _ => Value::Status(Status::Unset),
    }
}

fn parse_kind(text: &str) -> Value {
    Value::Kind(match text {
        "internal" => Kind::Internal,
        "server" => Kind::Server,
        "client" => Kind::Client,
        "producer" => Kind::Producer,
        "consumer" => Kind::Consumer,
        _ => Kind::Unspecified,
    })
}

fn intrinsic_value(intrinsic: Intrinsic, trace: &Trace, i: usize, element: Element<'_>) -> Value {
    let span = &trace.spans[i];
    let root = trace.root.map(|r| &trace.spans[r]);
    match intrinsic {
        Intrinsic::Name => Value::Str(span.name.clone()),
        Intrinsic::Status => parse_status(&span.status),
        Intrinsic::StatusMessage => Value::Str(span.status_message.clone()),
        Intrinsic::Kind => parse_kind(&span.kind),
        Intrinsic::Duration => Value::Duration(span.duration_nanos),
        Intrinsic::SpanId => Value::Str(span.span_id.to_hex()),
        Intrinsic::ParentId => span.parent_span_id.map_or(Value::Nil, |p| Value::Str(p.to_hex())),
        Intrinsic::ChildCount => Value::Int(trace.children[i].len() as i64),
        Intrinsic::TraceId => Value::Str(trace.id.to_hex()),
        Intrinsic::TraceDuration => Value::Duration(trace.duration_nanos()),
        Intrinsic::TraceRootName => root.map_or(Value::Nil, |r| Value::Str(r.name.clone())),
        Intrinsic::TraceRootService => root.and_then(|r| r.service_name.clone()).map_or(Value::Nil, Value::Str),
        Intrinsic::EventName => element.event.map_or(Value::Nil, |e| Value::Str(e.name.clone())),
        Intrinsic::EventTimeSinceStart => {
            element.event.map_or(Value::Nil, |e| Value::Duration(e.time_unix_nano - span.start_unix_nano))
        }
        Intrinsic::LinkTraceId => element.link.map_or(Value::Nil, |l| Value::Str(l.trace_id.clone())),
        Intrinsic::LinkSpanId => element.link.map_or(Value::Nil, |l| Value::Str(l.span_id.clone())),
        Intrinsic::InstrumentationName => span.scope_name.clone().map_or(Value::Nil, Value::Str),
        Intrinsic::InstrumentationVersion => Value::Str(span.scope_version.clone()),
        // Tempo numbers only the tree under a received root: a span cut off from it gets 0, and only a
        // span without a parent ID is a root (-1).
        Intrinsic::NestedSetLeft => Value::Int(if under_root(trace, i) { trace.nested_left[i] } else { 0 }),
        Intrinsic::NestedSetRight => Value::Int(if under_root(trace, i) { trace.nested_right[i] } else { 0 }),
        Intrinsic::NestedSetParent => Value::Int(match trace.parent[i] {
            _ if span.parent_span_id.is_none() => -1,
            Some(p) if under_root(trace, i) => trace.nested_left[p],
            _ => 0,
        }),
        Intrinsic::Parent => Value::Nil,
    }
}

/// Whether span `i` hangs, through received parents, from a span without a parent ID (a root). Cycles
/// (bad parent IDs) end the walk.
fn under_root(trace: &Trace, i: usize) -> bool {
    let mut current = i;
    for _ in 0..=trace.spans.len() {
        match trace.parent[current] {
            Some(p) => current = p,
            None => return trace.spans[current].parent_span_id.is_none(),
        }
    }
    false
}

/// Every attribute and span-level intrinsic the query's conditions and `select()` name, in the order
/// they appear: what each matched span shows besides its name and duration.
pub fn shown_fields(query: &Query) -> Vec<FieldExpr> {
    let mut fields: Vec<FieldExpr> = Vec::new();
    fn field(expr: &FieldExpr, out: &mut Vec<FieldExpr>) {
        match &expr.kind {
            FieldKind::Attribute(a)
                if !matches!(a.scope, AttributeScope::Event | AttributeScope::Link) && !a.parent =>
            {
                out.push(expr.clone())
            }
            FieldKind::Intrinsic(
                Intrinsic::Status | Intrinsic::StatusMessage | Intrinsic::Kind | Intrinsic::InstrumentationName,
            ) => out.push(expr.clone()),
            FieldKind::Unary(_, inner) => field(inner, out),
            FieldKind::Binary(_, l, r) => {
                field(l, out);
                field(r, out);
            }
            _ => {}
        }
    }
    fn pipeline(p: &Pipeline, out: &mut Vec<FieldExpr>) {
        for stage in &p.stages {
            match stage {
                Stage::Spanset(expr) => spanset(expr, out),
                Stage::Select(fields) | Stage::By(fields) => fields.iter().for_each(|f| field(f, out)),
                _ => {}
            }
        }
    }
    fn spanset(expr: &SpansetExpr, out: &mut Vec<FieldExpr>) {
        match expr {
            SpansetExpr::Filter { condition: Some(c), .. } => field(c, out),
            SpansetExpr::Filter { condition: None, .. } => {}
            SpansetExpr::Binary { left, right, .. } => {
                spanset(left, out);
                spanset(right, out);
            }
            SpansetExpr::Pipeline(p) => pipeline(p, out),
        }
    }
    pipeline(&query.pipeline, &mut fields);
    let mut seen = HashSet::new();
    fields.retain(|f| seen.insert(shown_name(f)));
    fields
}

/// The key a shown field has in the answer: an attribute's name without its scope (as Tempo shows
/// them), an intrinsic's short name.
pub fn shown_name(field: &FieldExpr) -> String {
    match &field.kind {
        FieldKind::Attribute(a) => a.name.clone(),
        FieldKind::Intrinsic(Intrinsic::Status) => "status".into(),
        FieldKind::Intrinsic(Intrinsic::StatusMessage) => "statusMessage".into(),
        FieldKind::Intrinsic(Intrinsic::Kind) => "kind".into(),
        FieldKind::Intrinsic(Intrinsic::InstrumentationName) => "instrumentation:name".into(),
        _ => field.to_string(),
    }
}

/// The value of a shown field of span `i` (no event or link in view).
pub fn shown_value(evaluator: &mut Evaluator<'_>, field: &FieldExpr, trace: &Trace, i: usize) -> Value {
    evaluator.value(field, trace, i, Element::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_texts_the_block_format_writes_for_them() {
        assert_eq!(numeric_text("500"), Some(500.0));
        assert_eq!(numeric_text("500.0"), Some(500.0));
        assert_eq!(numeric_text("-0.25"), Some(-0.25));
        assert_eq!(numeric_text("1e21"), Some(1e21));
        for text in ["0500", " 500", "500.00", "5e2", "abc", ""] {
            assert_eq!(numeric_text(text), None, "{text:?}");
        }
        for number in [500.0, 0.5, -3.0, 1e21] {
            for text in number_renderings(number) {
                assert_eq!(numeric_text(&text), Some(number), "{text}");
            }
        }
    }
}
