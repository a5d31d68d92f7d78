//! Pruning by a block's tag summary: a filter `service_name = 'x'`, `name = 'x'`, `attributes['k'] = 'v'`
//! or `resource_attributes['k'] = 'v'` (or an `IN` list of them) rules out a block whose summary proves
//! it holds no such value: the key is missing from a complete key list, or the value from a complete value
//! list. Blocks without a summary, and incomplete lists, are always kept, so this can only save work.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{InList, ScalarFunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::spans::schema::col;
use crate::storage::block::{TagScope, TagSummary};

/// What one filter compares.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Name,
    Service,
    Attribute(TagScope, String),
}

/// One conjunct the summary can check: the target must equal one of `values`.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryFilter {
    target: Target,
    values: Vec<String>,
}

impl SummaryFilter {
    /// The conjuncts of a scan's filters that a summary can check.
    pub fn from_conjuncts(conjuncts: &[&Expr]) -> Vec<SummaryFilter> {
        conjuncts.iter().filter_map(|expr| Self::from_expr(expr)).collect()
    }

    fn from_expr(expr: &Expr) -> Option<SummaryFilter> {
        let (subject, values) = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match text(right) {
                Some(value) => (left.as_ref(), vec![value.to_owned()]),
                None => (right.as_ref(), vec![text(left)?.to_owned()]),
            },
            // The optimiser turns short `IN` lists into `a = x OR a = y`.
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
                let (mut left, right) = (Self::from_expr(left)?, Self::from_expr(right)?);
                if left.target != right.target {
                    return None;
                }
                left.values.extend(right.values);
                return Some(left);
            }
            Expr::InList(InList { expr, list, negated: false }) => {
                (expr.as_ref(), list.iter().map(|e| text(e).map(str::to_owned)).collect::<Option<_>>()?)
            }
            _ => return None,
        };
        Some(SummaryFilter { target: target(subject)?, values })
    }

    /// The values a span's service name (`Some(true)`) or name (`Some(false)`) must be one of, for a filter
    /// on one of those columns: what an ingester of another process can check on its rows too.
    pub fn service_or_name(&self) -> Option<(bool, &[String])> {
        match self.target {
            Target::Service => Some((true, &self.values)),
            Target::Name => Some((false, &self.values)),
            Target::Attribute(..) => None,
        }
    }

    /// Whether a block with this summary may hold a row the filter admits.
    pub fn admits(&self, summary: &TagSummary) -> bool {
        self.values.iter().any(|value| match &self.target {
            Target::Name => summary.names.may_contain(value),
            Target::Service => summary.services.may_contain(value),
            Target::Attribute(scope, key) => summary.scope(*scope).may_contain(key, value),
        })
    }
}

/// The column or map entry an expression reads, if the summary knows its values.
fn target(expr: &Expr) -> Option<Target> {
    match expr {
        Expr::Column(column) if column.name == col::NAME => Some(Target::Name),
        Expr::Column(column) if column.name == col::SERVICE_NAME => Some(Target::Service),
        // `attributes['k']` is planned as `get_field(attributes, 'k')`.
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "get_field" => {
            let [Expr::Column(map), key] = args.as_slice() else { return None };
            let scope = match map.name.as_str() {
                col::ATTRIBUTES => TagScope::Span,
                col::RESOURCE_ATTRIBUTES => TagScope::Resource,
                _ => return None,
            };
            Some(Target::Attribute(scope, text(key)?.to_owned()))
        }
        _ => None,
    }
}

fn text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::block::ValueList;
    use datafusion::prelude::{col as column, lit};
    use std::sync::Arc;

    fn summary() -> TagSummary {
        let mut summary = TagSummary::default();
        Arc::make_mut(&mut summary.services).string.insert("checkout".into());
        Arc::make_mut(&mut summary.names).incomplete = true;
        let get = ValueList { string: ["GET".to_owned()].into(), ..Default::default() };
        summary.span.keys.insert("http.method".into(), get.into());
        summary.span.keys.insert("http.url".into(), ValueList { incomplete: true, ..Default::default() }.into());
        summary
    }

    fn admits(expr: Expr) -> bool {
        let filters = SummaryFilter::from_conjuncts(&[&expr]);
        assert_eq!(filters.len(), 1, "{expr} is checkable");
        filters[0].admits(&summary())
    }

    #[test]
    fn a_complete_list_rules_out_what_it_lacks_and_an_incomplete_one_nothing() {
        assert!(admits(column("service_name").eq(lit("checkout"))));
        assert!(!admits(column("service_name").eq(lit("cart"))));
        assert!(admits(lit("checkout").eq(column("service_name"))), "either way round");
        assert!(!admits(column("service_name").in_list(vec![lit("a"), lit("b")], false)));
        assert!(admits(column("service_name").in_list(vec![lit("a"), lit("checkout")], false)));
        assert!(!admits(column("service_name").eq(lit("a")).or(column("service_name").eq(lit("b")))));
        assert!(admits(column("service_name").eq(lit("a")).or(column("service_name").eq(lit("checkout")))));
        assert!(admits(column("name").eq(lit("anything"))), "the name list is incomplete");
        let attribute = |map: &str, key: &str| {
            Expr::ScalarFunction(ScalarFunction::new_udf(
                datafusion::functions::core::get_field(),
                vec![column(map), lit(key)],
            ))
        };
        assert!(admits(attribute("attributes", "http.method").eq(lit("GET"))));
        assert!(!admits(attribute("attributes", "http.method").eq(lit("PUT"))));
        assert!(!admits(attribute("attributes", "missing").eq(lit("x"))), "a key the block lacks");
        assert!(admits(attribute("attributes", "http.url").eq(lit("/x"))), "an incomplete value list");
        assert!(!admits(attribute("resource_attributes", "http.method").eq(lit("GET"))), "another scope");
    }

    #[test]
    fn other_filters_are_not_checked() {
        for expr in [
            column("service_name").not_eq(lit("x")),
            column("service_name").in_list(vec![lit("x")], true),
            column("kind").eq(lit("server")),
            column("service_name").like(lit("x%")),
            column("service_name").eq(lit("a")).or(column("name").eq(lit("b"))),
        ] {
            assert!(SummaryFilter::from_conjuncts(&[&expr]).is_empty(), "{expr}");
        }
    }
}
