//! Narrowing tag values by `q`, Tempo's unfinished TraceQL query: the conditions of its one spanset filter
//! that map onto `spans` columns become an SQL condition. Conditions that don't map are dropped (the
//! answer can only widen, which autocomplete tolerates); a query that is not one filter narrows nothing.
//! Private to tags until the TraceQL planner (`plan.rs`) can do this for both.

use super::tag::quote;
use crate::traceql::ast::{
    Attribute, AttributeScope, BinaryOp, FieldExpr, FieldKind, Intrinsic, Kind, SpansetExpr, Stage, Static, Status,
};
use crate::traceql::{self, Query};

/// The SQL condition `q` narrows to, `None` when it narrows nothing (empty, `{}`, unparsable, or nothing
/// in it maps onto columns).
pub fn condition(q: &str) -> Option<String> {
    let query = parse_leniently(q.trim())?;
    let [Stage::Spanset(SpansetExpr::Filter { condition: Some(condition), .. })] = query.pipeline.stages.as_slice()
    else {
        return None;
    };
    let mut parts = Vec::new();
    conjuncts(condition, &mut parts);
    let sql: Vec<String> = parts.into_iter().filter_map(comparison).collect();
    (!sql.is_empty()).then(|| sql.join(" AND "))
}

/// The query, or, when it is unfinished (Grafana sends what the user has typed so far), the query cut
/// after its last complete condition: `{a = 1 && b` reads as `{a = 1}`.
fn parse_leniently(q: &str) -> Option<Query> {
    if q.is_empty() {
        return None;
    }
    if let Ok(query) = traceql::check(q) {
        return Some(query);
    }
    let mut end = q.len();
    while let Some(cut) = q[..end].rfind("&&") {
        if let Ok(query) = traceql::check(&format!("{}}}", &q[..cut])) {
            return Some(query);
        }
        end = cut;
    }
    None
}

fn conjuncts<'a>(expr: &'a FieldExpr, out: &mut Vec<&'a FieldExpr>) {
    match &expr.kind {
        FieldKind::Binary(BinaryOp::And, left, right) => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        _ => out.push(expr),
    }
}

/// `field op literal` (or the other way round) as SQL, if the field is a column and the literal fits it.
fn comparison(expr: &FieldExpr) -> Option<String> {
    let FieldKind::Binary(op, left, right) = &expr.kind else { return None };
    let (field, op, value) = match (&left.kind, &right.kind) {
        (field, FieldKind::Static(value)) => (field, *op, value),
        (FieldKind::Static(value), field) => (field, swap(*op)?, value),
        _ => return None,
    };
    let sql_op = match op {
        BinaryOp::Eq => "=",
        BinaryOp::Neq => "<>",
        BinaryOp::Gt => ">",
        BinaryOp::Gte => ">=",
        BinaryOp::Lt => "<",
        BinaryOp::Lte => "<=",
        _ => return None,
    };
    let ordered = !matches!(op, BinaryOp::Eq | BinaryOp::Neq);
    match field {
        FieldKind::Attribute(attribute) => {
            let column = attribute_column(attribute)?;
            match value {
                Static::Str(text) => Some(format!("{column} {sql_op} {}", quote(text))),
                Static::Int(number) if ordered => Some(format!("TRY_CAST({column} AS BIGINT) {sql_op} {number}")),
                Static::Int(number) => Some(format!("{column} {sql_op} '{number}'")),
                Static::Bool(flag) if !ordered => Some(format!("{column} {sql_op} '{flag}'")),
                _ => None,
            }
        }
        FieldKind::Intrinsic(intrinsic) => {
            let (column, literal) = match (intrinsic, value) {
                (Intrinsic::Name, Static::Str(text)) => ("name", quote(text)),
                (Intrinsic::StatusMessage, Static::Str(text)) => ("status_message", quote(text)),
                (Intrinsic::Status, Static::Status(status)) if !ordered => ("status_code", quote(status_text(*status))),
                (Intrinsic::Kind, Static::Kind(kind)) if !ordered => ("kind", quote(kind_text(*kind))),
                (Intrinsic::Duration, Static::Duration(duration)) => ("duration_ns", duration.as_nanos().to_string()),
                _ => return None,
            };
            Some(format!("{column} {sql_op} {literal}"))
        }
        _ => None,
    }
}

/// The `spans` expression of an attribute; `None` for scopes and parents SQL cannot reach simply.
fn attribute_column(attribute: &Attribute) -> Option<String> {
    if attribute.parent {
        return None;
    }
    let key = quote(&attribute.name);
    match attribute.scope {
        AttributeScope::Resource if attribute.name == "service.name" => Some("service_name".to_owned()),
        AttributeScope::Resource => Some(format!("resource_attributes[{key}]")),
        AttributeScope::Span => Some(format!("attributes[{key}]")),
        AttributeScope::None => Some(format!("coalesce(attributes[{key}], resource_attributes[{key}])")),
        AttributeScope::Event | AttributeScope::Link | AttributeScope::Instrumentation => None,
    }
}

fn swap(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Eq | BinaryOp::Neq => op,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        _ => return None,
    })
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Unset => "unset",
    }
}

fn kind_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Unspecified => "unspecified",
        Kind::Internal => "internal",
        Kind::Server => "server",
        Kind::Client => "client",
        Kind::Producer => "producer",
        Kind::Consumer => "consumer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_filter_becomes_an_sql_condition() {
        assert_eq!(condition(r#"{resource.service.name="a"}"#).as_deref(), Some("service_name = 'a'"));
        assert_eq!(
            condition(r#"{span.http.method = "GET" && status = error && kind = server && name != "o'k"}"#).as_deref(),
            Some("attributes['http.method'] = 'GET' AND status_code = 'error' AND kind = 'server' AND name <> 'o''k'")
        );
        assert_eq!(
            condition(r#"{.http.status_code >= 500}"#).as_deref(),
            Some(
                "TRY_CAST(coalesce(attributes['http.status_code'], resource_attributes['http.status_code']) AS BIGINT) >= 500"
            )
        );
        assert_eq!(condition("{duration > 1s}").as_deref(), Some("duration_ns > 1000000000"));
    }

    #[test]
    fn what_does_not_map_narrows_nothing() {
        for q in ["", "{}", "{ .a = ", "{.a = 1} >> {.b = 2}", "{.a =~ \"x.*\"}", "{} | count() > 2", "garbage"] {
            assert_eq!(condition(q), None, "{q}");
        }
    }

    #[test]
    fn an_unfinished_query_is_cut_after_its_last_complete_condition() {
        assert_eq!(condition(r#"{resource.service.name="a" && span.http"#).as_deref(), Some("service_name = 'a'"));
        assert_eq!(
            condition(r#"{name="x" && .a = 1 && "#).as_deref(),
            Some("name = 'x' AND coalesce(attributes['a'], resource_attributes['a']) = '1'")
        );
    }
}
