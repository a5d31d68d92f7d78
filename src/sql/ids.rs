//! `trace_id = '<hex>'` as users type it: an analyzer rule that checks and normalises string literals
//! compared with ID columns (left-padded like Tempo, lowercased), so `'ABC'` finds trace `000…abc` and a
//! literal that can never be an ID is a 400 naming it instead of a silently empty answer. Binary literals
//! (`X'<hex>'`, as DuckDB users write IDs stored as blobs) of the ID's length are read as that ID, and of
//! any other length are a 400 too. The pruning in `table.rs` then reads the normalised literal.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchemaRef, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, expr::InList};
use datafusion::optimizer::{Analyzer, AnalyzerRule};

use super::schema::IdKind;
use crate::ids::{SpanId, TraceId};

/// The rule; stateless.
#[derive(Debug, Default)]
pub struct IdLiterals;

impl IdLiterals {
    /// DataFusion's analyzer rules with this one just before type coercion, which would otherwise cast
    /// an ID column to binary to compare it with `X'…'` (or with a list mixing the two kinds of literal)
    /// and match nothing.
    pub fn with_default_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
        let mut rules = Analyzer::new().rules;
        let coercion = rules.iter().position(|rule| rule.name() == TYPE_COERCION).unwrap_or(0);
        rules.insert(coercion, Arc::new(Self));
        rules
    }
}

/// The name DataFusion's type coercion rule goes by.
const TYPE_COERCION: &str = "type_coercion";

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
                && let Some(literal) = id_literal(&right)
            {
                let right = Box::new(canonical(kind, &name, literal)?);
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            if let Some((kind, name)) = id_column(&right, inputs)
                && let Some(literal) = id_literal(&left)
            {
                let left = Box::new(canonical(kind, &name, literal)?);
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right })));
            }
            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })))
        }
        Expr::InList(InList { expr, list, negated }) => {
            let id_list = id_column(&expr, inputs)
                .and_then(|column| Some((column, list.iter().map(id_literal).collect::<Option<Vec<_>>>()?)));
            match id_list {
                Some(((kind, name), literals)) => {
                    let list = literals
                        .into_iter()
                        .map(|literal| canonical(kind, &name, literal))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Transformed::yes(Expr::InList(InList { expr, list, negated })))
                }
                None => Ok(Transformed::no(Expr::InList(InList { expr, list, negated }))),
            }
        }
        other => Ok(Transformed::no(other)),
    }
}

/// A literal a user may mean as an ID: hex text, or the ID's bytes.
#[derive(Clone, Copy)]
enum IdLiteral<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

fn id_literal(expr: &Expr) -> Option<IdLiteral<'_>> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) => {
            Some(IdLiteral::Text(text))
        }
        Expr::Literal(ScalarValue::LargeUtf8(Some(text)), _) => Some(IdLiteral::Text(text)),
        Expr::Literal(
            ScalarValue::Binary(Some(bytes))
            | ScalarValue::LargeBinary(Some(bytes))
            | ScalarValue::BinaryView(Some(bytes))
            | ScalarValue::FixedSizeBinary(_, Some(bytes)),
            _,
        ) => Some(IdLiteral::Bytes(bytes)),
        _ => None,
    }
}

/// The lowercase, full-length hex literal an ID literal stands for, or a plan error naming the column
/// and the literal.
fn canonical(kind: IdKind, column: &str, literal: IdLiteral<'_>) -> Result<Expr> {
    let parsed = match (kind, literal) {
        (IdKind::Trace, IdLiteral::Text(text)) => TraceId::from_hex(text).map(|id| id.to_hex()),
        (IdKind::Span, IdLiteral::Text(text)) => SpanId::from_hex(text).map(|id| id.to_hex()),
        (IdKind::Trace, IdLiteral::Bytes(bytes)) => TraceId::from_slice(bytes).map(|id| id.to_hex()),
        (IdKind::Span, IdLiteral::Bytes(bytes)) => SpanId::from_slice(bytes).map(|id| id.to_hex()),
    };
    let hex = parsed.map_err(|error| {
        let shown = match literal {
            IdLiteral::Text(text) => {
                format!("{text:?}, which is not an ID ({} hex characters at most)", kind.len() * 2)
            }
            IdLiteral::Bytes(bytes) => format!("a {}-byte binary literal, which is not an ID", bytes.len()),
        };
        DataFusionError::Plan(format!("{column} is compared with {shown}: {error}"))
    })?;
    Ok(Expr::Literal(ScalarValue::Utf8(Some(hex)), None))
}
