//! The SQL a TraceQL query pushes down onto `spans`: a condition every span that can end up in one of the
//! query's spansets satisfies. It decides which traces are read and evaluated whole (`eval.rs`), so it
//! must never be false for such a span; it may be true for others (then evaluation drops them).
//!
//! A condition on something SQL cannot see per span (trace-level intrinsics, events, links, a parent's
//! attributes, arithmetic) is left out of a conjunction (true) and makes a disjunction true; the rest
//! becomes SQL on the columns the block format prunes best (`service_name`, `name`, `status_code`,
//! `duration_ns`, the attribute maps), so statistics, page indexes, bloom filters and block summaries
//! skip what cannot match.

use crate::traceql::ast::{
    Attribute, AttributeScope, BinaryOp, FieldExpr, FieldKind, Intrinsic, Pipeline, Query, SpansetExpr, SpansetOp,
    Stage, Static,
};

use super::eval::number_renderings;

/// The SQL condition (over `spans`) for spans that may be in the query's result; `None` when every span
/// may be.
pub fn span_condition(query: &Query) -> Option<String> {
    pipeline(&query.pipeline)
}

/// An SQL string literal.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn and(parts: Vec<Option<String>>) -> Option<String> {
    let known: Vec<String> = parts.into_iter().flatten().collect();
    match known.len() {
        0 => None,
        1 => known.into_iter().next(),
        _ => Some(format!("({})", known.join(" AND "))),
    }
}

fn or(parts: Vec<Option<String>>) -> Option<String> {
    let known: Option<Vec<String>> = parts.into_iter().collect();
    let known = known?;
    match known.len() {
        0 => None,
        1 => known.into_iter().next(),
        _ => Some(format!("({})", known.join(" OR "))),
    }
}

fn pipeline(pipeline: &Pipeline) -> Option<String> {
    // Later spanset stages only narrow the spansets of earlier ones: a result span satisfies each.
    and(pipeline
        .stages
        .iter()
        .map(|stage| match stage {
            Stage::Spanset(expr) => spanset(expr),
            _ => None,
        })
        .collect())
}

fn spanset(expr: &SpansetExpr) -> Option<String> {
    match expr {
        SpansetExpr::Filter { condition: None, .. } => None,
        SpansetExpr::Filter { condition: Some(condition), .. } => field(condition),
        SpansetExpr::Pipeline(inner) => pipeline(inner),
        SpansetExpr::Binary { op, left, right } => {
            use SpansetOp::*;
            match op {
                // Both sides' spans are in the result.
                And | Or | UnionChild | UnionParent | UnionDescendant | UnionAncestor | UnionSibling => {
                    or(vec![spanset(left), spanset(right)])
                }
                // Only the right side's spans are.
                _ => spanset(right),
            }
        }
    }
}

/// The SQL of a boolean field expression, or `None` when SQL cannot decide it per span.
fn field(expr: &FieldExpr) -> Option<String> {
    match &expr.kind {
        FieldKind::Binary(BinaryOp::And, left, right) => and(vec![field(left), field(right)]),
        FieldKind::Binary(BinaryOp::Or, left, right) => or(vec![field(left), field(right)]),
        FieldKind::Binary(op, left, right)
            if op.is_comparison() || matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) =>
        {
            match (&left.kind, &right.kind) {
                (_, FieldKind::Static(value)) => comparison(left, *op, value),
                (FieldKind::Static(value), _) => comparison(right, swap(*op)?, value),
                _ => None,
            }
        }
        _ => None,
    }
}

fn swap(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        BinaryOp::Eq | BinaryOp::Neq => op,
        _ => return None,
    })
}

/// Where SQL reads a field: a column or map entry holding text, or a typed column.
enum Column {
    Text(String),
    Duration(String),
}

fn column(expr: &FieldExpr) -> Option<Column> {
    Some(match &expr.kind {
        FieldKind::Intrinsic(Intrinsic::Name) => Column::Text("name".into()),
        FieldKind::Intrinsic(Intrinsic::Status) => Column::Text("status_code".into()),
        FieldKind::Intrinsic(Intrinsic::StatusMessage) => Column::Text("status_message".into()),
        FieldKind::Intrinsic(Intrinsic::Kind) => Column::Text("kind".into()),
        FieldKind::Intrinsic(Intrinsic::Duration) => Column::Duration("duration_ns".into()),
        FieldKind::Intrinsic(Intrinsic::SpanId) => Column::Text("span_id".into()),
        FieldKind::Intrinsic(Intrinsic::ParentId) => Column::Text("parent_span_id".into()),
        FieldKind::Intrinsic(Intrinsic::InstrumentationName) => Column::Text("scope_name".into()),
        FieldKind::Intrinsic(Intrinsic::InstrumentationVersion) => Column::Text("scope_version".into()),
        FieldKind::Attribute(Attribute { scope, parent: false, name }) => Column::Text(match scope {
            AttributeScope::Span => format!("attributes[{}]", sql_string(name)),
            // The resource's service name is also a column of its own, which blocks prune on.
            AttributeScope::Resource if name == "service.name" => "service_name".into(),
            AttributeScope::Resource => format!("resource_attributes[{}]", sql_string(name)),
            AttributeScope::None => {
                let resource = if name == "service.name" {
                    "service_name".to_owned()
                } else {
                    format!("resource_attributes[{}]", sql_string(name))
                };
                format!("coalesce(attributes[{}], {resource})", sql_string(name))
            }
            AttributeScope::Event | AttributeScope::Link | AttributeScope::Instrumentation => return None,
        }),
        _ => return None,
    })
}

fn sql_op(op: BinaryOp) -> Option<&'static str> {
    Some(match op {
        BinaryOp::Eq => "=",
        BinaryOp::Neq => "<>",
        BinaryOp::Gt => ">",
        BinaryOp::Gte => ">=",
        BinaryOp::Lt => "<",
        BinaryOp::Lte => "<=",
        _ => return None,
    })
}

/// `field op value` in SQL, meaning what the evaluator means by it (`eval.rs`).
fn comparison(field: &FieldExpr, op: BinaryOp, value: &Static) -> Option<String> {
    let column = column(field)?;
    let text = match &column {
        Column::Text(text) => text.clone(),
        Column::Duration(name) => {
            let nanos = match value {
                Static::Duration(d) => i64::try_from(d.as_nanos()).ok()? as f64,
                Static::Int(i) => *i as f64,
                Static::Float(f) => *f,
                _ => return None,
            };
            return Some(format!("{name} {} {nanos}", sql_op(op)?));
        }
    };
    match value {
        Static::Nil => match op {
            BinaryOp::Eq => Some(format!("{text} IS NULL")),
            BinaryOp::Neq => Some(format!("{text} IS NOT NULL")),
            _ => None,
        },
        Static::Str(s) => match op {
            BinaryOp::Regex => Some(format!("regexp_like({text}, {})", sql_string(&format!("^(?:{s})$")))),
            BinaryOp::NotRegex => Some(format!("NOT regexp_like({text}, {})", sql_string(&format!("^(?:{s})$")))),
            _ => Some(format!("{text} {} {}", sql_op(op)?, sql_string(s))),
        },
        Static::Int(_) | Static::Float(_) | Static::Duration(_) => {
            let number = match value {
                Static::Int(i) => *i as f64,
                Static::Float(f) => *f,
                Static::Duration(d) => d.as_nanos() as f64,
                _ => return None,
            };
            if !number.is_finite() {
                return None;
            }
            // Equality is on the stored text (a plain string comparison the scan's row filter and the
            // block summaries can use); order needs the number.
            let texts = || number_renderings(number).iter().map(|t| sql_string(t)).collect::<Vec<_>>().join(", ");
            match op {
                BinaryOp::Eq => Some(format!("{text} IN ({})", texts())),
                BinaryOp::Neq => Some(format!("{text} NOT IN ({})", texts())),
                _ => Some(format!("try_cast({text} AS DOUBLE) {} {number:?}", sql_op(op)?)),
            }
        }
        Static::Bool(b) => match op {
            BinaryOp::Eq => Some(format!("{text} = '{b}'")),
            BinaryOp::Neq => Some(format!("{text} = '{}'", !b)),
            _ => None,
        },
        Static::Status(s) => match op {
            BinaryOp::Eq => Some(format!("{text} = '{}'", s.keyword())),
            BinaryOp::Neq => Some(format!("{text} <> '{}'", s.keyword())),
            _ => None,
        },
        Static::Kind(k) => match op {
            BinaryOp::Eq => Some(format!("{text} = '{}'", k.keyword())),
            BinaryOp::Neq => Some(format!("{text} <> '{}'", k.keyword())),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql;

    fn sql(text: &str) -> Option<String> {
        span_condition(&traceql::check(text).unwrap())
    }

    #[test]
    fn grafana_builder_queries_push_down_whole() {
        assert_eq!(
            sql(r#"{resource.service.name="a" && name="b" && status=error && duration>100ms}"#).as_deref(),
            Some("(((service_name = 'a' AND name = 'b') AND status_code = 'error') AND duration_ns > 100000000)")
        );
        assert_eq!(
            sql(r#"{span.x="a" || span.x="b"}"#).as_deref(),
            Some("(attributes['x'] = 'a' OR attributes['x'] = 'b')")
        );
        assert_eq!(
            sql(r#"{.x=~"a|b"}"#).as_deref(),
            Some("regexp_like(coalesce(attributes['x'], resource_attributes['x']), '^(?:a|b)$')")
        );
        assert_eq!(sql(r#"{span.code >= 500}"#).as_deref(), Some("try_cast(attributes['code'] AS DOUBLE) >= 500.0"));
        assert_eq!(sql(r#"{span.code = 500}"#).as_deref(), Some("attributes['code'] IN ('500.0', '500')"));
        assert_eq!(sql(r#"{span.ratio != 0.5}"#).as_deref(), Some("attributes['ratio'] NOT IN ('0.5')"));
        assert_eq!(sql(r#"{span.o = "it's"}"#).as_deref(), Some("attributes['o'] = 'it''s'"));
    }

    #[test]
    fn what_sql_cannot_see_per_span_is_left_to_evaluation() {
        assert_eq!(sql("{}"), None);
        assert_eq!(sql("{traceDuration > 1s}"), None);
        assert_eq!(sql(r#"{traceDuration > 1s && name = "a"}"#).as_deref(), Some("name = 'a'"));
        assert_eq!(sql(r#"{traceDuration > 1s || name = "a"}"#), None, "a disjunction with an unknown side");
        assert_eq!(sql(r#"{event.x = "a"}"#), None);
        assert_eq!(sql(r#"{.a + 1 > 2}"#), None);
    }

    #[test]
    fn structural_queries_push_down_the_side_they_return() {
        assert_eq!(sql(r#"{name="a"} >> {name="b"}"#).as_deref(), Some("name = 'b'"));
        assert_eq!(sql(r#"{name="a"} &>> {name="b"}"#).as_deref(), Some("(name = 'a' OR name = 'b')"));
        assert_eq!(sql(r#"{name="a"} && {name="b"}"#).as_deref(), Some("(name = 'a' OR name = 'b')"));
        assert_eq!(sql(r#"{name="a"} | count() > 2"#).as_deref(), Some("name = 'a'"));
        assert_eq!(sql(r#"{name="a"} | {status=error}"#).as_deref(), Some("(name = 'a' AND status_code = 'error')"));
    }
}
