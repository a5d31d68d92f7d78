//! Functions whose result can be far larger than their arguments (`repeat('x', 2000000000)`,
//! `range(0, 250000000)`, a 2 MB literal `concat`ed onto every row) are checked before they run: a call
//! whose result would pass the query's memory limit is refused with the limit named (507), instead of
//! allocating gigabytes that DataFusion's memory pool never sees (it accounts operators' state, not the
//! arrays expressions build). Text literals are bounded too, since a projection repeats a literal on
//! every row of a batch.
//!
//! Each bounded function keeps DataFusion's own implementation ([`Bounded`] wraps it and delegates
//! everything else); only the estimate of its result is ours. Estimates are upper bounds per batch (the
//! rows of one call), so a query that fits is never refused.
//!
//! May call: DataFusion's function registry and expression types. Owns the estimates.

use std::sync::Arc;

use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNanoType};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// How a bounded function's result size follows from its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Estimate {
    /// `repeat(text, n)`: text × n per row.
    Repeat,
    /// `lpad`/`rpad(text, n [, fill])`: n characters of up to 4 bytes, plus the text.
    Pad,
    /// `replace(text, from, to)`: every occurrence of `from` (between every character when empty) may
    /// become `to`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: a match may be empty (one per character)
    /// and each `$n`/`\n` in the replacement may copy the whole text.
    RegexpReplace,
    /// `array_repeat(element, n)`: element × n per row.
    ArrayRepeat,
    /// `array_resize(list, n [, fill])`: n elements of the list's (or the fill's) size.
    ArrayResize,
    /// `range`/`generate_series(…)`: one 8-byte element per step between start and stop.
    Range,
    /// `concat`, `array_concat`, `array_replace…`: at most the sum of the arguments, a literal counted
    /// once per row; for the `array_replace` family each element may become the replacement.
    Sum,
}

/// Functions (DataFusion's names, aliases included) and how their results are estimated.
const BOUNDED: [(&str, Estimate); 16] = [
    ("repeat", Estimate::Repeat),
    ("lpad", Estimate::Pad),
    ("rpad", Estimate::Pad),
    ("replace", Estimate::Replace),
    ("regexp_replace", Estimate::RegexpReplace),
    ("array_repeat", Estimate::ArrayRepeat),
    ("array_resize", Estimate::ArrayResize),
    ("range", Estimate::Range),
    ("generate_series", Estimate::Range),
    ("concat", Estimate::Sum),
    ("concat_ws", Estimate::Sum),
    ("array_concat", Estimate::Sum),
    ("array_append", Estimate::Sum),
    ("array_prepend", Estimate::Sum),
    ("array_replace_all", Estimate::Sum),
    ("array_replace_n", Estimate::Sum),
];

/// `functions` with each function of [`BOUNDED`] wrapped so that a call whose result would pass
/// `limit_bytes` is refused. `array_replace` replaces one element per list, so it is covered by the sum.
pub fn bound_functions(functions: Vec<Arc<ScalarUDF>>, limit_bytes: u64) -> Vec<Arc<ScalarUDF>> {
    functions
        .into_iter()
        .map(|function| match BOUNDED.iter().find(|(name, _)| *name == function.name()) {
            Some(&(_, estimate)) => {
                Arc::new(ScalarUDF::new_from_impl(Bounded { inner: function, estimate, limit_bytes }))
            }
            None => function,
        })
        .collect()
}

/// Refuses a plan holding a text or binary literal longer than `limit_bytes / batch_rows`: a projection
/// or function repeats a literal on every row of a batch, so a longer one would pass the query's memory
/// limit in a single array.
pub fn check_literals(plan: &LogicalPlan, limit_bytes: u64, batch_rows: usize) -> Result<()> {
    let most = limit_bytes / batch_rows.max(1) as u64;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Literal(value, _) = e {
                    let bytes = literal_bytes(value);
                    if bytes > most {
                        return Err(DataFusionError::ResourcesExhausted(format!(
                            "a literal of {bytes} bytes is longer than this query may repeat on every row \
                             ({most} bytes: the memory limit of {limit_bytes} bytes over {batch_rows}-row batches)"
                        )));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map(|_| ())
}

fn literal_bytes(value: &ScalarValue) -> u64 {
    match value {
        ScalarValue::Utf8(Some(text)) | ScalarValue::LargeUtf8(Some(text)) | ScalarValue::Utf8View(Some(text)) => {
            text.len() as u64
        }
        ScalarValue::Binary(Some(bytes))
        | ScalarValue::LargeBinary(Some(bytes))
        | ScalarValue::BinaryView(Some(bytes))
        | ScalarValue::FixedSizeBinary(_, Some(bytes)) => bytes.len() as u64,
        // What the value holds beyond its fixed size (list and struct literals); numbers hold nothing.
        other => other.size().saturating_sub(std::mem::size_of::<ScalarValue>()) as u64,
    }
}

/// A DataFusion function that refuses calls whose result would pass `limit_bytes`; everything else is
/// the wrapped function's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    limit_bytes: u64,
}

impl Bounded {
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let args = Args::new(args, rows)?;
        let bytes = match self.estimate {
            Estimate::Repeat => args.sum_rows(|a, row| a.bytes(0, row).saturating_mul(a.count(1, row))),
            Estimate::Pad => args.sum_rows(|a, row| a.count(1, row).saturating_mul(4).saturating_add(a.bytes(0, row))),
            Estimate::Replace => args.sum_rows(|a, row| {
                let text = a.bytes(0, row);
                let occurrences = (text + 1) / a.bytes(1, row).max(1);
                occurrences.saturating_mul(a.bytes(2, row)).saturating_add(text)
            }),
            Estimate::RegexpReplace => args.sum_rows(|a, row| {
                let text = a.bytes(0, row);
                let copies = a.references(2, row);
                let per_match = a.bytes(2, row).saturating_add(copies.saturating_mul(text));
                (text + 1).saturating_mul(per_match).saturating_add(text)
            }),
            Estimate::ArrayRepeat => args.sum_rows(|a, row| a.bytes(0, row).max(1).saturating_mul(a.count(1, row))),
            Estimate::ArrayResize => args.sum_rows(|a, row| {
                let element = a.element_bytes(0, row).max(a.bytes(2, row)).max(1);
                a.count(1, row).saturating_mul(element.saturating_add(4))
            }),
            Estimate::Range => args.sum_rows(|a, row| a.steps(row).saturating_mul(8)),
            Estimate::Sum => args.sum_rows(|a, row| {
                let all = (0..a.len()).map(|at| a.bytes(at, row)).fold(0u64, u64::saturating_add);
                // Every element of the list may become the replacement (`array_replace_all`).
                all.saturating_add(a.elements(0, row).saturating_mul(a.bytes(2, row)))
            }),
        };
        if bytes > self.limit_bytes {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} would build about {bytes} bytes for {rows} rows, more than this query's memory limit \
                 of {} bytes",
                self.inner.name(),
                self.limit_bytes
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.inner().aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.inner().signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.inner().invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(&self, interval: &Interval, inputs: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
}

/// A call's arguments, each readable by row (a scalar reads the same at every row).
struct Args {
    columns: Vec<ArrayRef>,
    rows: usize,
}

impl Args {
    fn new(args: &[ColumnarValue], rows: usize) -> Result<Self> {
        let columns = args
            .iter()
            .map(|arg| match arg {
                ColumnarValue::Array(array) => Ok(array.clone()),
                ColumnarValue::Scalar(value) => value.to_array_of_size(1),
            })
            .collect::<Result<Vec<_>>>()?;
        // A call with only literal arguments (constant folding) has one row.
        Ok(Self { columns, rows: rows.max(1) })
    }

    fn len(&self) -> usize {
        self.columns.len()
    }

    fn sum_rows(&self, per_row: impl Fn(&Self, usize) -> u64) -> u64 {
        (0..self.rows).map(|row| per_row(self, row)).fold(0, u64::saturating_add)
    }

    /// Argument `at` at `row`: a scalar is a one-row array read at every row.
    fn cell(&self, at: usize, row: usize) -> Option<(&ArrayRef, usize)> {
        let column = self.columns.get(at)?;
        let index = if column.len() == 1 { 0 } else { row };
        (index < column.len() && column.is_valid(index)).then_some((column, index))
    }

    /// Bytes of argument `at` at `row`: a text's or binary's length, otherwise its memory.
    fn bytes(&self, at: usize, row: usize) -> u64 {
        let Some((column, index)) = self.cell(at, row) else { return 0 };
        let length = match self.text(at, row) {
            Some(value) => value.len(),
            None => column.slice(index, 1).to_data().get_slice_memory_size().unwrap_or(0),
        };
        length as u64
    }

    /// The bytes of the text or binary argument `at` at `row` (`None` for other types and NULL).
    fn text(&self, at: usize, row: usize) -> Option<&[u8]> {
        let (column, index) = self.cell(at, row)?;
        Some(match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().value(index).as_bytes(),
            DataType::LargeUtf8 => column.as_string::<i64>().value(index).as_bytes(),
            DataType::Utf8View => column.as_string_view().value(index).as_bytes(),
            DataType::Binary => column.as_binary::<i32>().value(index),
            DataType::LargeBinary => column.as_binary::<i64>().value(index),
            DataType::BinaryView => column.as_binary_view().value(index),
            _ => return None,
        })
    }

    /// Elements of the list argument `at` at `row` (0 if it is no list).
    fn elements(&self, at: usize, row: usize) -> u64 {
        let Some((column, index)) = self.cell(at, row) else { return 0 };
        let length = match column.data_type() {
            DataType::List(_) => column.as_list::<i32>().value_length(index) as usize,
            DataType::LargeList(_) => column.as_list::<i64>().value_length(index) as usize,
            DataType::FixedSizeList(_, size) => *size as usize,
            _ => 0,
        };
        length as u64
    }

    /// Average bytes of one element of the list argument `at` at `row`.
    fn element_bytes(&self, at: usize, row: usize) -> u64 {
        self.bytes(at, row) / self.elements(at, row).max(1)
    }

    /// Argument `at` at `row` as a non-negative count (negative and NULL count as 0).
    fn count(&self, at: usize, row: usize) -> u64 {
        self.int(at, row).map_or(0, |n| n.max(0) as u64)
    }

    fn int(&self, at: usize, row: usize) -> Option<i64> {
        let (column, index) = self.cell(at, row)?;
        let value = ScalarValue::try_from_array(column, index).ok()?;
        match value.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => n,
            _ => None,
        }
    }

    /// `$1`, `${name}` or `\1` references in the text argument `at` at `row`: each may copy a match.
    fn references(&self, at: usize, row: usize) -> u64 {
        self.text(at, row).map_or(0, |text| text.iter().filter(|&&b| b == b'$' || b == b'\\').count() as u64)
    }

    /// Elements `range`/`generate_series` would produce at `row`: integers, or dates and timestamps
    /// stepped by an interval (a month counted as 28 days, the shortest).
    fn steps(&self, row: usize) -> u64 {
        let (start, stop, step) = match self.len() {
            1 => (Some(0), self.nanos_or_int(0, row), Some(1)),
            2 => (self.nanos_or_int(0, row), self.nanos_or_int(1, row), Some(1)),
            _ => (self.nanos_or_int(0, row), self.nanos_or_int(1, row), self.step(2, row)),
        };
        match (start, stop, step) {
            (Some(start), Some(stop), Some(step)) if step != 0 => {
                let span = (stop - start).unsigned_abs();
                u64::try_from(span / i128::from(step).unsigned_abs()).unwrap_or(u64::MAX).saturating_add(1)
            }
            _ => 0,
        }
    }

    /// An integer argument as it is, a date or timestamp as nanoseconds since the epoch (in 128 bits:
    /// dates reach far past the nanosecond range of 64 bits).
    fn nanos_or_int(&self, at: usize, row: usize) -> Option<i128> {
        let (column, index) = self.cell(at, row)?;
        let scaled = |value: Option<i64>, nanos_per_unit: i128| value.map(|v| i128::from(v) * nanos_per_unit);
        match ScalarValue::try_from_array(column, index).ok()? {
            ScalarValue::Date32(days) => scaled(days.map(i64::from), 86_400_000_000_000),
            ScalarValue::Date64(millis) => scaled(millis, 1_000_000),
            ScalarValue::TimestampSecond(v, _) => scaled(v, 1_000_000_000),
            ScalarValue::TimestampMillisecond(v, _) => scaled(v, 1_000_000),
            ScalarValue::TimestampMicrosecond(v, _) => scaled(v, 1_000),
            ScalarValue::TimestampNanosecond(v, _) => scaled(v, 1),
            _ => self.int(at, row).map(i128::from),
        }
    }

    /// A step argument: an integer, or an interval in nanoseconds.
    fn step(&self, at: usize, row: usize) -> Option<i64> {
        let (column, index) = self.cell(at, row)?;
        match column.data_type() {
            DataType::Interval(_) => {
                let interval = ScalarValue::try_from_array(column, index)
                    .ok()?
                    .cast_to(&DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano));
                let ScalarValue::IntervalMonthDayNano(Some(value)) = interval.ok()? else { return None };
                let (months, days, nanos) = IntervalMonthDayNanoType::to_parts(value);
                const DAY: i64 = 86_400_000_000_000;
                let total =
                    i64::from(months).saturating_mul(28 * DAY).saturating_add(i64::from(days).saturating_mul(DAY));
                Some(total.saturating_add(nanos))
            }
            _ => self.int(at, row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::any::Any;

    fn call(name: &str, args: Vec<ColumnarValue>, rows: usize, limit: u64) -> Result<()> {
        let functions = bound_functions(datafusion::functions::all_default_functions(), limit);
        let nested = bound_functions(datafusion::functions_nested::all_default_nested_functions(), limit);
        let function = functions.iter().chain(&nested).find(|f| f.name() == name).expect("a function");
        let inner = (function.inner().as_ref() as &dyn Any).downcast_ref::<Bounded>().expect("bounded");
        inner.check(&args, rows)
    }

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_owned())))
    }

    fn int(value: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(value)))
    }

    #[test]
    fn estimates_refuse_what_would_pass_the_limit_and_allow_what_fits() {
        let mb = 1 << 20;
        assert!(call("repeat", vec![text("ab"), int(1000)], 1, mb).is_ok());
        assert!(call("repeat", vec![text("x"), int(2_000_000_000)], 1, mb).is_err());
        // A literal repeated on every row of a batch counts once per row.
        assert!(call("repeat", vec![text("x"), int(1000)], 8192, mb).is_err());
        assert!(call("lpad", vec![text("x"), int(300_000)], 1, mb).is_err());
        assert!(call("rpad", vec![text("x"), int(10)], 1, mb).is_ok());
        assert!(call("replace", vec![text(&"a".repeat(2000)), text(""), text(&"b".repeat(1000))], 1, mb).is_err());
        assert!(call("replace", vec![text("aaaa"), text("a"), text("bb")], 1, mb).is_ok());
        assert!(call("regexp_replace", vec![text(&"a".repeat(2000)), text(""), text("$0$0")], 1, mb).is_err());
        assert!(call("range", vec![int(0), int(250_000_000)], 1, mb).is_err());
        assert!(call("range", vec![int(0), int(10), int(2)], 1, mb).is_ok());
        assert!(call("generate_series", vec![int(1_000_000)], 1, mb).is_err());
        assert!(call("array_repeat", vec![text("x"), int(2_000_000)], 1, mb).is_err());
        assert!(call("concat", vec![text(&"x".repeat(1000)), text("y")], 8192, mb).is_err());
        assert!(call("concat", vec![text("x"), text("y")], 8192, mb).is_ok());
    }

    #[test]
    fn date_ranges_count_their_steps() {
        let day = |d: i32| ColumnarValue::Scalar(ScalarValue::Date32(Some(d)));
        let second = ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(
            IntervalMonthDayNanoType::make_value(0, 0, 1_000_000_000),
        )));
        assert!(call("range", vec![day(0), day(3_000_000), second.clone()], 1, 1 << 30).is_err());
        assert!(call("range", vec![day(0), day(1), second], 1, 1 << 30).is_ok());
    }

    #[test]
    fn unbounded_functions_are_left_as_they_are() {
        let functions = bound_functions(datafusion::functions::all_default_functions(), 1);
        let upper = functions.iter().find(|f| f.name() == "upper").unwrap();
        assert!((upper.inner().as_ref() as &dyn Any).downcast_ref::<Bounded>().is_none());
    }
}
