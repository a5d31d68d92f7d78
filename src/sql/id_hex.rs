//! IDs shown as hex only after the `traces` view has grouped by them.
//!
//! The view groups every span by `trace_id`. Over the `spans` table that means turning every span's
//! 16-byte ID into 32 hex characters and hashing those, to keep one row per trace; the view instead reads
//! the stored binary IDs (a twin of `spans` with [`IdForm::Binary`](super::table::IdForm)), groups on
//! 16 bytes, and makes hex of one ID per trace with [`IdHex`]. The result carries the ID marker, so the
//! literal rule (`ids.rs`) and the pruning (`table.rs`) treat `traces.trace_id = '…'` as before.
//! (BENCHMARKS.md, issue 25 item 3: the view's slowest-traces query.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::schema::{IdKind, hex_fixed};

/// Hex text of a binary ID column; not callable from user SQL (it is in no function registry).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IdHex {
    kind: IdKind,
    signature: Signature,
}

impl IdHex {
    /// `expr` (a stored ID of `kind`) as the SQL shows it.
    pub fn call(kind: IdKind, expr: Expr) -> Expr {
        let signature = Signature::exact(vec![DataType::FixedSizeBinary(kind.len() as i32)], Volatility::Immutable);
        ScalarUDF::new_from_impl(Self { kind, signature }).call(vec![expr])
    }

    /// The column `expr` makes hex of, if it is a call of this function on a column.
    pub fn column_of(expr: &Expr) -> Option<&str> {
        let Expr::ScalarFunction(call) = expr else { return None };
        call.func.inner().downcast_ref::<Self>()?;
        match call.args.as_slice() {
            [Expr::Column(column)] => Some(&column.name),
            _ => None,
        }
    }
}

impl ScalarUDFImpl for IdHex {
    fn name(&self) -> &str {
        "spanlake_id_hex"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|field| field.is_nullable());
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, nullable).with_metadata(self.kind.marker())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [argument] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!("{} takes one argument", self.name())));
        };
        match argument {
            ColumnarValue::Array(ids) => Ok(ColumnarValue::Array(hex_of(ids)?)),
            ColumnarValue::Scalar(scalar) => {
                let array = hex_of(&scalar.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?))
            }
        }
    }
}

fn hex_of(ids: &ArrayRef) -> Result<ArrayRef> {
    let ids = ids
        .as_fixed_size_binary_opt()
        .ok_or_else(|| DataFusionError::Internal(format!("hex of {}, not a binary ID", ids.data_type())))?;
    Ok(Arc::new(hex_fixed(ids)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::FixedSizeBinaryArray;
    use datafusion::prelude::col;

    #[test]
    fn makes_lowercase_hex_and_keeps_nulls_and_the_id_marker() {
        let ids: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size([Some([0xABu8; 8]), None].into_iter(), 8).unwrap(),
        );
        let hex = hex_of(&ids).unwrap();
        let hex = hex.as_string::<i32>();
        assert_eq!(hex.value(0), "abababababababab");
        assert!(hex.is_null(1));

        let call = IdHex::call(IdKind::Span, col("parent_span_id"));
        assert_eq!(IdHex::column_of(&call), Some("parent_span_id"));
        assert_eq!(IdHex::column_of(&col("parent_span_id")), None);
        let Expr::ScalarFunction(function) = &call else { panic!("a call") };
        let input = Arc::new(Field::new("parent_span_id", DataType::FixedSizeBinary(8), true));
        let field = function
            .func
            .return_field_from_args(ReturnFieldArgs { arg_fields: &[input], scalar_arguments: &[None] })
            .unwrap();
        assert_eq!(IdKind::of(&field), Some(IdKind::Span));
        assert!(field.is_nullable());
    }
}
