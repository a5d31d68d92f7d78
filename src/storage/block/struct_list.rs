//! The direct encoder for the span schema's `events` and `links` columns: lists of structs whose fields
//! are flat values or `map<string, string>` attributes. Each row's list is read where it sits in the
//! request batches, in sorted order, and its levels and values are handed to `leaf.rs`.
//!
//! Why: these were the last columns gathered into sorted order for parquet's writer, which then walks the
//! nested type to compute levels. Gathering and encoding them that way was ~12 % of a block write, for
//! columns that are empty on most spans (BENCHMARKS.md, issue 2).
//!
//! Only the shape the span schema declares comes here: a required list of required structs, each field a
//! flat value that `flat.rs` reads or a required `map<utf8, utf8>`, and no statistics on any leaf (nested
//! leaves have none in a block). Other shapes go through parquet's writer.
//!
//! May call: `leaf.rs`; the Arrow readers of `flat.rs` and `string_map.rs`; arrow's arrays.

use arrow::array::{Array, ListArray, StructArray};
use arrow::datatypes::{DataType, Field};
use parquet::errors::ParquetError;

use super::flat::Source as FlatSource;
use super::leaf::{EncodedLeaf, LeafLayout, LeafWriter, ValueKind, source_at};
use super::string_map::Source as MapSource;
use crate::storage::StorageError;

/// How one field of the element struct is written: into one leaf, or into a map's key and value leaves.
#[derive(Clone)]
enum FieldLeaves {
    Flat(LeafLayout),
    Map { key: LeafLayout, value: LeafLayout },
}

/// One field of the element struct, as one batch holds it.
enum FieldSource<'a> {
    Flat(FlatSource<'a>),
    Map(MapSource<'a>),
}

/// One batch's list column: where each row's elements are, and the element struct's fields.
struct Source<'a> {
    list: &'a ListArray,
    fields: Vec<FieldSource<'a>>,
}

/// The writers of one field's leaves while a chunk is written (boxed: a writer is ~800 bytes, and a map
/// has two).
enum FieldWriters<'a> {
    Flat { leaf: Box<LeafWriter<'a>>, required: bool },
    Map { keys: Box<LeafWriter<'a>>, values: Box<LeafWriter<'a>> },
}

/// Definition level of an element whose map field is empty: the list has the element, the map no entry.
const EMPTY_MAP_DEF: i16 = 1;

/// A block's `list<struct<…>>` column across its input batches, encoded one row group at a time by
/// [`Self::encode`].
pub(super) struct StructListColumn<'a> {
    sources: Vec<Source<'a>>,
    fields: Vec<FieldLeaves>,
}

impl<'a> StructListColumn<'a> {
    /// The column `field` of every batch (`columns`), with its leaves' layouts in schema order; `None`
    /// when the type, the levels, a layout or a batch's arrays are not the shape this encoder writes.
    pub(super) fn new(field: &Field, columns: &[&'a dyn Array], layouts: &[Option<LeafLayout>]) -> Option<Self> {
        let DataType::List(element) = field.data_type() else { return None };
        let DataType::Struct(struct_fields) = element.data_type() else { return None };
        if field.is_nullable() || element.is_nullable() {
            return None;
        }
        let mut layouts = layouts.iter();
        let mut next = || layouts.next().cloned().flatten().filter(|leaf| !leaf.has_statistics());
        let mut fields = Vec::with_capacity(struct_fields.len());
        for struct_field in struct_fields {
            let leaves = match struct_field.data_type() {
                DataType::Map(..) => {
                    let (key, value) = (next()?, next()?);
                    let shaped = !struct_field.is_nullable()
                        && [&key, &value]
                            .iter()
                            .all(|leaf| leaf.kind() == ValueKind::ByteArray && leaf.descr.max_rep_level() == 2)
                        && key.descr.max_def_level() == 2
                        && value.descr.max_def_level() == 3;
                    shaped.then_some(FieldLeaves::Map { key, value })?
                }
                _ => {
                    let leaf = next()?;
                    let shaped = leaf.descr.max_rep_level() == 1
                        && leaf.descr.max_def_level() == 1 + i16::from(struct_field.is_nullable());
                    shaped.then_some(FieldLeaves::Flat(leaf))?
                }
            };
            fields.push(leaves);
        }
        // Every leaf belongs to a field: leaves left over mean a shape this encoder does not know.
        if layouts.next().is_some() {
            return None;
        }
        let sources = columns
            .iter()
            .map(|column| {
                let list = column.as_any().downcast_ref::<ListArray>()?;
                let elements = list.values().as_any().downcast_ref::<StructArray>()?;
                if list.null_count() > 0 || elements.null_count() > 0 || elements.num_columns() != fields.len() {
                    return None;
                }
                let fields = elements
                    .columns()
                    .iter()
                    .zip(&fields)
                    .map(|(child, leaves)| match leaves {
                        FieldLeaves::Flat(leaf) => FlatSource::new(child.as_ref(), leaf.kind()).map(FieldSource::Flat),
                        FieldLeaves::Map { .. } => {
                            MapSource::new(child.as_ref()).filter(|map| map.map.null_count() == 0).map(FieldSource::Map)
                        }
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Source { list, fields })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { sources, fields })
    }

    /// Encodes the rows at `positions` ((batch, row), in the order they are written) into the column's
    /// leaf chunks for one row group, in schema order.
    pub(super) fn encode(&self, positions: &[(usize, usize)]) -> Result<Vec<EncodedLeaf>, StorageError> {
        let mut writers: Vec<FieldWriters> = self
            .fields
            .iter()
            .map(|leaves| match leaves {
                FieldLeaves::Flat(leaf) => FieldWriters::Flat {
                    leaf: Box::new(LeafWriter::new(leaf.clone(), 0)),
                    required: leaf.descr.max_def_level() == 1,
                },
                FieldLeaves::Map { key, value } => FieldWriters::Map {
                    keys: Box::new(LeafWriter::new(key.clone(), 0)),
                    values: Box::new(LeafWriter::new(value.clone(), 0)),
                },
            })
            .collect();
        for &(batch, row) in positions {
            let source = source_at(&self.sources, batch, row, |source| source.list.len())?;
            let offsets = source.list.value_offsets();
            let elements = offsets[row] as usize..offsets[row + 1] as usize;
            if elements.is_empty() {
                // An empty list: one level per leaf, the row's only one.
                for writer in &mut writers {
                    writer.each_leaf(|leaf| {
                        leaf.level(0, 0);
                        Ok(())
                    })?;
                }
            }
            for element in elements.clone() {
                let rep = u8::from(element > elements.start);
                for (field, writer) in source.fields.iter().zip(&mut writers) {
                    write_field(field, writer, element, rep)?;
                }
            }
            for writer in &mut writers {
                writer.each_leaf(LeafWriter::end_row)?;
            }
        }
        writers
            .into_iter()
            .flat_map(|writer| match writer {
                FieldWriters::Flat { leaf, .. } => vec![*leaf],
                FieldWriters::Map { keys, values } => vec![*keys, *values],
            })
            .map(LeafWriter::finish)
            .collect()
    }
}

impl<'a> FieldWriters<'a> {
    /// Calls `f` on each of the field's leaf writers, in schema order.
    fn each_leaf(
        &mut self,
        mut f: impl FnMut(&mut LeafWriter<'a>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        match self {
            Self::Flat { leaf, .. } => f(leaf),
            Self::Map { keys, values } => f(keys).and_then(|()| f(values)),
        }
    }
}

/// Writes one element's `field` at repetition level `rep` (0 for a row's first element, else 1).
fn write_field<'a>(
    field: &FieldSource<'a>,
    writer: &mut FieldWriters<'a>,
    element: usize,
    rep: u8,
) -> Result<(), StorageError> {
    match (field, writer) {
        (FieldSource::Flat(source), FieldWriters::Flat { leaf, required }) => match source.value(element) {
            Some(value) => leaf.value(rep, value),
            None if *required => {
                let column = leaf.path();
                return Err(ParquetError::General(format!("null in required column {column}")).into());
            }
            None => leaf.null(rep),
        },
        (FieldSource::Map(map), FieldWriters::Map { keys, values }) => match map.entries(element) {
            None => {
                keys.level(rep, EMPTY_MAP_DEF);
                values.level(rep, EMPTY_MAP_DEF);
            }
            Some(entries) => {
                for entry in entries.clone() {
                    // An element's first entry repeats at the element's level, the others within the map.
                    let rep = if entry == entries.start { rep } else { 2 };
                    keys.value(rep, map.keys.value(entry).as_bytes());
                    match map.values.is_valid(entry) {
                        true => values.value(rep, map.values.value(entry).as_bytes()),
                        false => values.null(rep),
                    }
                }
            }
        },
        _ => return Err(ParquetError::General("list field and its leaves disagree".into()).into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder,
        TimestampNanosecondArray, UInt32Array,
    };
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{Fields, Schema, TimeUnit};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use proptest::prelude::*;

    use super::*;
    use crate::spans::schema::{event_fields, link_fields};
    use crate::storage::block::leaf::testing::{NestedLayout, interleaved, reads_back, shuffle, split};

    /// One field's value in one element.
    #[derive(Clone, Debug)]
    enum Value {
        Int(u32),
        Text(Option<String>),
        Map(Vec<(String, Option<String>)>),
    }

    /// A row: the list's elements, each with a value per struct field.
    type Row = Vec<Vec<Value>>;

    fn value(field: &Field) -> BoxedStrategy<Value> {
        // Few distinct strings, so runs and dictionary hits happen; sometimes long ones.
        let text = || prop_oneof![4 => "[ab]{0,2}", 1 => "[a-z]{20,60}"];
        match field.data_type() {
            DataType::Map(..) => {
                prop::collection::vec((text(), prop::option::weighted(0.9, text())), 0..4).prop_map(Value::Map).boxed()
            }
            DataType::Utf8 | DataType::Binary if field.is_nullable() => {
                prop::option::weighted(0.7, text()).prop_map(Value::Text).boxed()
            }
            DataType::Utf8 | DataType::Binary => text().prop_map(|text| Value::Text(Some(text))).boxed(),
            _ => prop_oneof![0..3u32, any::<u32>()].prop_map(Value::Int).boxed(),
        }
    }

    fn row(fields: &Fields) -> impl Strategy<Value = Row> + use<> {
        let element: Vec<_> = fields.iter().map(|field| value(field)).collect();
        prop::collection::vec(element, 0..4)
    }

    fn column(field: &Field, values: &[&Value]) -> ArrayRef {
        let texts = || values.iter().map(|value| if let Value::Text(text) = value { text.clone() } else { None });
        let ints = || values.iter().map(|value| if let Value::Int(int) = value { *int } else { 0 });
        match field.data_type() {
            DataType::Utf8 => Arc::new(texts().collect::<StringArray>()),
            DataType::Binary => Arc::new(texts().map(|text| text.map(String::into_bytes)).collect::<BinaryArray>()),
            DataType::UInt32 => Arc::new(ints().collect::<UInt32Array>()),
            DataType::Timestamp(TimeUnit::Nanosecond, zone) => Arc::new(
                ints()
                    .map(|int| Some(i64::from(int) - 7))
                    .collect::<TimestampNanosecondArray>()
                    .with_timezone_opt(zone.clone()),
            ),
            DataType::Map(..) => {
                let names = MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() };
                let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
                    .with_values_field(Field::new("value", DataType::Utf8, true));
                for value in values {
                    for (key, value) in if let Value::Map(entries) = value { entries.as_slice() } else { &[] } {
                        builder.keys().append_value(key);
                        builder.values().append_option(value.as_deref());
                    }
                    builder.append(true).unwrap();
                }
                Arc::new(builder.finish())
            }
            other => unreachable!("no test values for {other}"),
        }
    }

    fn list_batch(rows: &[Row], fields: &Fields) -> RecordBatch {
        let elements: Vec<&Vec<Value>> = rows.iter().flatten().collect();
        let columns = fields
            .iter()
            .enumerate()
            .map(|(at, field)| column(field, &elements.iter().map(|element| &element[at]).collect::<Vec<_>>()))
            .collect();
        let structs = StructArray::new(fields.clone(), columns, None);
        let element = Arc::new(Field::new("element", DataType::Struct(fields.clone()), false));
        let offsets = OffsetBuffer::from_lengths(rows.iter().map(Vec::len));
        let list = ListArray::new(element.clone(), offsets, Arc::new(structs), None);
        let schema = Schema::new(vec![Field::new("list", DataType::List(element), false)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(list)]).unwrap()
    }

    /// Writes the rows of `batches` at `positions` with [`StructListColumn`], `layout.row_group_rows` per
    /// row group, into a Parquet file that parquet's own writer set up.
    fn write_file(batches: &[RecordBatch], positions: &[(usize, usize)], layout: &NestedLayout) -> Bytes {
        let props = layout.properties();
        let schema = batches[0].schema();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone())).unwrap();
        let (mut file, _) = writer.into_serialized_writer().unwrap();
        let layouts: Vec<_> =
            file.schema_descr().columns().iter().map(|leaf| LeafLayout::for_leaf(&props, leaf)).collect();
        let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let column = StructListColumn::new(schema.field(0), &columns, &layouts).expect("the span schema's shape");
        for rows in positions.chunks(layout.row_group_rows) {
            let mut row_group = file.next_row_group().unwrap();
            for leaf in column.encode(rows).unwrap() {
                row_group.append_column(&leaf.data, leaf.close).unwrap();
            }
            row_group.close().unwrap();
        }
        Bytes::from(file.into_inner().unwrap())
    }

    fn fields_and_rows() -> impl Strategy<Value = (Fields, Vec<Row>)> {
        prop_oneof![Just(event_fields()), Just(link_fields())]
            .prop_flat_map(|fields| (Just(fields.clone()), prop::collection::vec(row(&fields), 1..300)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Whatever the elements (none, several, with empty or full maps, null or set optional fields),
        /// their order and the layout, parquet reads back the rows that were written, in order, for both
        /// list columns of the span schema; and a read that skips pages through the page index gets the
        /// rows it selected.
        #[test]
        fn parquet_reads_back_what_was_written(
            (fields, rows) in fields_and_rows(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            seed in any::<u64>(),
            layout in NestedLayout::strategy(),
            skip in 1usize..30,
            take in 1usize..30,
        ) {
            let (batches, mut positions) = split(&rows, &cuts, |rows| list_batch(rows, &fields));
            shuffle(&mut positions, seed);
            let file = write_file(&batches, &positions, &layout);
            reads_back(file, &interleaved(&batches, &positions), take, skip)?;
        }
    }

    /// Shapes whose levels this encoder does not write are left to parquet's writer: a nullable list, a leaf
    /// with statistics, and leaves no field accounts for.
    #[test]
    fn other_shapes_are_left_to_parquet() {
        let fields = event_fields();
        let batch = list_batch(&[vec![]], &fields);
        let element = Arc::new(Field::new("element", DataType::Struct(fields), false));
        let columns: Vec<&dyn Array> = vec![batch.column(0).as_ref()];
        let layouts = |statistics| {
            let props = WriterProperties::builder().set_statistics_enabled(statistics).build();
            let descr = parquet::arrow::ArrowSchemaConverter::new().convert(&batch.schema()).unwrap();
            descr.columns().iter().map(|leaf| LeafLayout::for_leaf(&props, leaf)).collect::<Vec<_>>()
        };
        let required = Field::new("list", DataType::List(element.clone()), false);
        assert!(StructListColumn::new(&required, &columns, &layouts(EnabledStatistics::None)).is_some());
        assert!(StructListColumn::new(&required, &columns, &layouts(EnabledStatistics::Chunk)).is_none());
        let mut more_leaves = layouts(EnabledStatistics::None);
        more_leaves.push(more_leaves[0].clone());
        assert!(StructListColumn::new(&required, &columns, &more_leaves).is_none());
        let nullable = Field::new("list", DataType::List(element), true);
        assert!(StructListColumn::new(&nullable, &columns, &layouts(EnabledStatistics::None)).is_none());
    }
}
