//! Narrowing tag values by `q`, Tempo's unfinished TraceQL query. A query that is one spanset filter narrows
//! to the SQL condition the planner pushes down for it (`plan.rs`): the same translation the search runs,
//! where what SQL cannot decide per span is dropped (the answer can only widen, which autocomplete
//! tolerates). Anything else narrows nothing.

use super::super::plan::span_condition;
use crate::traceql::ast::{SpansetExpr, Stage};
use crate::traceql::{self, Query};

/// The SQL condition `q` narrows to, `None` when it narrows nothing (empty, `{}`, unparsable, more than one
/// spanset filter, or nothing in it maps onto columns).
pub fn condition(q: &str) -> Option<String> {
    let query = parse_leniently(q.trim())?;
    let [Stage::Spanset(SpansetExpr::Filter { condition: Some(_), .. })] = query.pipeline.stages.as_slice() else {
        return None;
    };
    span_condition(&query)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_filter_becomes_an_sql_condition() {
        assert_eq!(condition(r#"{resource.service.name="a"}"#).as_deref(), Some("service_name = 'a'"));
        assert_eq!(
            condition(r#"{span.http.method = "GET" && status = error && kind = server && name != "o'k"}"#).as_deref(),
            Some(
                "(((attributes['http.method'] = 'GET' AND status_code = 'error') AND kind = 'server') AND name <> 'o''k')"
            )
        );
        assert_eq!(
            condition(r#"{.http.status_code >= 500}"#).as_deref(),
            Some(
                "try_cast(coalesce(attributes['http.status_code'], resource_attributes['http.status_code']) AS DOUBLE) >= 500.0"
            )
        );
        assert_eq!(condition("{duration > 1s}").as_deref(), Some("duration_ns > 1000000000"));
    }

    #[test]
    fn what_does_not_map_narrows_nothing() {
        for q in ["", "{}", "{ .a = ", "{.a = 1} >> {.b = 2}", "{event.a = \"x\"}", "{} | count() > 2", "garbage"] {
            assert_eq!(condition(q), None, "{q}");
        }
    }

    #[test]
    fn an_unfinished_query_is_cut_after_its_last_complete_condition() {
        assert_eq!(condition(r#"{resource.service.name="a" && span.http"#).as_deref(), Some("service_name = 'a'"));
        assert_eq!(
            condition(r#"{name="x" && .a = 1 && "#).as_deref(),
            Some("(name = 'x' AND coalesce(attributes['a'], resource_attributes['a']) IN ('1.0', '1'))")
        );
    }
}
