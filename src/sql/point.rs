//! Point reads for `trace_id = …` and `trace_id IN (…)`: the blocks left after pruning are read with
//! the trace-by-ID lookup's own reader (footer cache, row-group statistics, page index, row filter on
//! the ID) instead of DataFusion's Parquet scan. Both read the same pages, but the scan's per-file
//! set-up (pruning predicates, page-index evaluation, the row filter's predicate cache) cost a
//! one-trace query about three times what the whole lookup costs (BENCHMARKS.md, SQL (d)).
//!
//! A query that is nothing but a projection of `spans` columns for a few trace IDs ([`PointQuery`], what
//! Grafana and scripts send to fetch traces) skips DataFusion's planning altogether: parsing, planning
//! and optimising it cost more than reading the trace (BENCHMARKS.md, SQL (d)), and its plan is always
//! the table's own scan. Anything else, even with one clause more, is planned by DataFusion.
//!
//! May call the querier's block reads and `leaf.rs`; owns the point reads and the recognition of point queries.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement as SqlStatement,
    TableFactor, Value,
};
use futures::{StreamExt, TryStreamExt};

use super::leaf::LeafExec;
use super::schema::{cast_batch, sql_schema};
use crate::ids::TraceId;
use crate::query::{CatalogBlock, Querier};
use crate::spans::schema::col;

/// Up to this many IDs a query is answered by point reads; a longer `IN` list is a scan's job (each
/// ID is one lookup per block its bloom admits).
pub const MAX_POINT_TRACES: usize = 64;

/// Whether `ids` are few enough to be read by point reads. The one test of it, so that a scan reads by
/// points exactly when a point query or a one-partition plan expects it to.
pub fn few_enough(ids: &[TraceId]) -> bool {
    ids.len() <= MAX_POINT_TRACES
}

/// Blocks read at once, as a trace-by-ID lookup does.
const CONCURRENT_READS: usize = 4;

/// Reads the given traces from the given blocks (each with the traces its ID range and bloom admit: one
/// read per block, however many of the traces it may hold), keeping the stored columns `projection`,
/// typed as `schema` (the scan schema, `schema::scan_schema`, projected).
pub fn trace_reads(
    querier: Querier,
    reads: Vec<(Arc<CatalogBlock>, Vec<TraceId>)>,
    projection: Vec<usize>,
    schema: SchemaRef,
) -> LeafExec {
    let traces: usize = reads.iter().map(|(_, ids)| ids.len()).sum();
    let shown = format!("TraceReadExec: point_reads={traces}, blocks={}", reads.len());
    let (projection, out) = (Arc::new(projection), schema.clone());
    let open = move |_context: Arc<TaskContext>| -> Result<SendableRecordBatchStream> {
        let (querier, projection, schema) = (querier.clone(), projection.clone(), out.clone());
        let batches = futures::stream::iter(reads.clone())
            .map(move |(block, ids)| {
                let (querier, projection, schema) = (querier.clone(), projection.clone(), schema.clone());
                async move {
                    let rows = querier
                        .traces_rows_in_block(&block, &ids)
                        .await
                        .map_err(|error| DataFusionError::External(Box::new(error)))?;
                    let projected: Vec<Result<RecordBatch>> =
                        rows.iter().map(|batch| Ok(cast_batch(&batch.project(&projection)?, &schema)?)).collect();
                    Ok::<_, DataFusionError>(futures::stream::iter(projected))
                }
            })
            .buffered(CONCURRENT_READS)
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out.clone(), batches)) as SendableRecordBatchStream)
    };
    LeafExec::new("TraceReadExec", shown, schema, Arc::new(open))
}

/// `SELECT * | column, … FROM spans WHERE trace_id = '…' | trace_id IN ('…', …)`, and nothing else: the
/// table's scan for those IDs answers it exactly (point reads of the blocks, the ingester's rows of the
/// traces), so it needs no plan above the scan.
#[derive(Clone, Debug, PartialEq)]
pub struct PointQuery {
    /// Columns of the SQL schema, in the order asked.
    pub columns: Vec<usize>,
    /// Distinct, canonical trace IDs; at most [`MAX_POINT_TRACES`].
    pub traces: Vec<TraceId>,
}

impl PointQuery {
    /// The point query `statement` is, if it is one. A literal that is not an ID, an unknown or repeated
    /// column, or any clause more gives `None`, and DataFusion plans the statement (and reports its errors).
    pub fn recognise(statement: &DfStatement) -> Option<Self> {
        let DfStatement::Statement(inner) = statement else { return None };
        let SqlStatement::Query(query) = inner.as_ref() else { return None };
        let SetExpr::Select(select) = query.body.as_ref() else { return None };

        let schema = sql_schema();
        let mut columns = Vec::new();
        let mut shown = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    columns.extend(0..schema.fields().len());
                    shown.push("*".to_owned());
                }
                SelectItem::UnnamedExpr(SqlExpr::Identifier(ident)) => {
                    columns.push(schema.index_of(&normalised(ident)).ok()?);
                    shown.push(ident.to_string());
                }
                _ => return None,
            }
        }
        let mut distinct = columns.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != columns.len() {
            return None;
        }

        let [from] = select.from.as_slice() else { return None };
        let TableFactor::Table { name, .. } = &from.relation else { return None };
        let [ObjectNamePart::Identifier(table)] = name.0.as_slice() else { return None };
        if normalised(table) != "spans" {
            return None;
        }

        let selection = select.selection.as_ref()?;
        let (column, literals) = match selection {
            SqlExpr::BinaryOp { left, op: BinaryOperator::Eq, right } => match (left.as_ref(), right.as_ref()) {
                (SqlExpr::Identifier(column), literal) | (literal, SqlExpr::Identifier(column)) => {
                    (column, vec![string(literal)?])
                }
                _ => return None,
            },
            SqlExpr::InList { expr, list, negated: false } => {
                let SqlExpr::Identifier(column) = expr.as_ref() else { return None };
                (column, list.iter().map(string).collect::<Option<Vec<_>>>()?)
            }
            _ => return None,
        };
        if normalised(column) != col::TRACE_ID {
            return None;
        }
        let mut traces = literals.into_iter().map(|text| TraceId::from_hex(text).ok()).collect::<Option<Vec<_>>>()?;
        traces.sort_unstable();
        traces.dedup();
        if !few_enough(&traces) {
            return None;
        }

        // Nothing else anywhere in the query (DISTINCT, an alias, ORDER BY, LIMIT, a CTE…): its text is
        // exactly the parts read above.
        let bare = format!("SELECT {} FROM {name} WHERE {selection}", shown.join(", "));
        (query.to_string() == bare).then_some(Self { columns, traces })
    }
}

/// An identifier as DataFusion resolves it: unquoted ones are lowercased.
fn normalised(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn string(expr: &SqlExpr) -> Option<&str> {
    match expr {
        SqlExpr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn recognise(sql: &str) -> Option<PointQuery> {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        PointQuery::recognise(&statements.pop_front().unwrap())
    }

    fn column(name: &str) -> usize {
        sql_schema().index_of(name).unwrap()
    }

    #[test]
    fn projections_of_a_few_trace_ids_are_point_queries() {
        let all = recognise("SELECT * FROM spans WHERE trace_id = '5B8EFFF798038103D269B633813FC60C'").unwrap();
        assert_eq!(all.columns, (0..sql_schema().fields().len()).collect::<Vec<_>>());
        assert_eq!(all.traces, vec![TraceId::from_hex("5b8efff798038103d269b633813fc60c").unwrap()]);

        let some = recognise("select NAME, \"span_id\" from Spans where 'abc' = Trace_Id").unwrap();
        assert_eq!(some.columns, vec![column("name"), column("span_id")]);
        assert_eq!(some.traces, vec![TraceId::from_hex("abc").unwrap()]);

        let listed = recognise("SELECT name FROM spans WHERE trace_id IN ('abc', '0ABC', 'def')").unwrap();
        assert_eq!(listed.traces, vec![TraceId::from_hex("abc").unwrap(), TraceId::from_hex("def").unwrap()]);
    }

    #[test]
    fn anything_more_is_left_to_datafusion() {
        let id = "'5b8efff798038103d269b633813fc60c'";
        let many = (1..=65).map(|i| format!("'{i:x}'")).collect::<Vec<_>>().join(", ");
        for sql in [
            format!("SELECT DISTINCT name FROM spans WHERE trace_id = {id}"),
            format!("SELECT name AS n FROM spans WHERE trace_id = {id}"),
            format!("SELECT name FROM spans WHERE trace_id = {id} ORDER BY name"),
            format!("SELECT name FROM spans WHERE trace_id = {id} LIMIT 1"),
            format!("SELECT name FROM spans WHERE trace_id = {id} AND kind = 'server'"),
            format!("SELECT name, name FROM spans WHERE trace_id = {id}"),
            format!("SELECT upper(name) FROM spans WHERE trace_id = {id}"),
            format!("SELECT \"NAME\" FROM spans WHERE trace_id = {id}"),
            format!("SELECT nope FROM spans WHERE trace_id = {id}"),
            format!("SELECT * FROM spans s WHERE trace_id = {id}"),
            format!("SELECT * FROM traces WHERE trace_id = {id}"),
            format!("SELECT * FROM spans WHERE span_id = {id}"),
            format!("SELECT * FROM spans WHERE trace_id <> {id}"),
            format!("SELECT * FROM spans WHERE trace_id NOT IN ({id})"),
            format!("SELECT * FROM spans WHERE trace_id IN ({many})"),
            format!("WITH t AS (SELECT 1) SELECT * FROM spans WHERE trace_id = {id}"),
            format!("EXPLAIN SELECT * FROM spans WHERE trace_id = {id}"),
            format!("SELECT * FROM spans WHERE trace_id = {id} UNION ALL SELECT * FROM spans WHERE trace_id = {id}"),
            "SELECT * FROM spans WHERE trace_id = 'xyz'".to_owned(),
            "SELECT * FROM spans WHERE trace_id = \"abc\"".to_owned(),
            "SELECT * FROM spans".to_owned(),
        ] {
            assert_eq!(recognise(&sql), None, "{sql}");
        }
    }
}
