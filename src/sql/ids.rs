//! `trace_id = '<hex>'` as users type it: an analyzer rule that checks and normalises string literals
//! compared with ID columns (left-padded like Tempo, lowercased), so `'ABC'` finds trace `000…abc` and a
//! literal that can never be an ID is a 400 naming it instead of a silently empty answer. The pruning in
//! `table.rs` then reads the normalised literal.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchemaRef, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, expr::InList};
use datafusion::optimizer::AnalyzerRule;

use super::schema::IdKind;
use crate::ids::{SpanId, TraceId};

/// The rule; stateless.
#[derive(Debug, Default)]
pub struct IdLiterals;

impl AnalyzerRule for IdLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let inputs: Vec<DFSchemaRef> = node.inputs().iter().map(|input| input.schema().clone()).collect();
            node.map_expressions(|expr| expr.transform_up(|e| normalise(e, &inputs)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "spanlake_id_literals"
    }
}

/// The ID kind of `expr` if it is a column of one of `inputs` marked as an ID.
fn id_column(expr: &Expr, inputs: &[DFSchemaRef]) -> Option<(IdKind, String)> {
    let Expr::Column(column) = expr else { return None };
    inputs.iter().find_map(|schema| {
        let (_, field) = schema.qualified_field_from_column(column).ok()?;
        IdKind::of(field).map(|kind| (kind, column.name.clone()))
    })
}

fn normalise(expr: Expr, inputs: &[DFSchemaRef]) -> Result<Transformed<Expr>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Eq | Operator::NotEq), right }) => {
            if let Some((kind, name)) = id_column(&left, inputs)
                && let Some(text) = string_literal(&right)
            {
                let right = Box::new(Expr::Literal(ScalarValue::Utf8(Some(canonical(kind, &name, text)?)), None));
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            if let Some((kind, name)) = id_column(&right, inputs)
                && let Some(text) = string_literal(&left)
            {
                let left = Box::new(Expr::Literal(ScalarValue::Utf8(Some(canonical(kind, &name, text)?)), None));
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })))
        }
        Expr::InList(InList { expr, list, negated }) => match id_column(&expr, inputs) {
            Some((kind, name)) if list.iter().all(|item| string_literal(item).is_some()) => {
                let list = list
                    .iter()
                    .map(|item| {
                        let text = string_literal(item).unwrap_or_default();
                        Ok(Expr::Literal(ScalarValue::Utf8(Some(canonical(kind, &name, text)?)), None))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Transformed::yes(Expr::InList(InList { expr, list, negated })))
            }
            _ => Ok(Transformed::no(Expr::InList(InList { expr, list, negated }))),
        },
        other => Ok(Transformed::no(other)),
    }
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) => Some(text),
        Expr::Literal(ScalarValue::LargeUtf8(Some(text)), _) => Some(text),
        _ => None,
    }
}

/// The lowercase, full-length form of an ID literal, or a plan error naming the column and the literal.
fn canonical(kind: IdKind, column: &str, text: &str) -> Result<String> {
    let parsed = match kind {
        IdKind::Trace => TraceId::from_hex(text).map(|id| id.to_hex()),
        IdKind::Span => SpanId::from_hex(text).map(|id| id.to_hex()),
    };
    parsed.map_err(|error| {
        DataFusionError::Plan(format!(
            "{column} is compared with {text:?}, which is not an ID ({} hex characters at most): {error}",
            kind.len() * 2
        ))
    })
}
