//! The Arrow schema of one span row: the shape of every block and of the ingester's buffer.
//!
//! Column names follow the SQL `spans` table (CONTRACTS §5) wherever the storage type allows, so DuckDB and
//! pyarrow users see the same names. Extra columns (`*attribute_types`, `*attribute_nested`,
//! `resource_entity_refs`, the `*_dropped_*` counts, `flags`, the schema URLs) carry what SQL users rarely
//! want but OTLP needs to round-trip losslessly. See `docs/storage-format.md`.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

/// A span's end in unix nanoseconds, from its stored start and duration: the inverse of how the encoder
/// computes the duration (`end - start`, wrapping), so the end OTLP sent comes back exactly.
pub fn end_time_nanos(start: i64, duration: i64) -> i64 {
    start.wrapping_add(duration)
}

/// Column names, declared once so the encoder, decoder, reader and tests cannot drift apart.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const NAME: &str = "name";
    pub const KIND: &str = "kind";
    pub const FLAGS: &str = "flags";
    pub const START_TIME: &str = "start_time";
    /// Not stored (see [`span_schema`](super::span_schema)); the SQL `spans` table derives it.
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const SERVICE_NAME: &str = "service_name";
    pub const ATTRIBUTES: &str = "attributes";
    pub const ATTRIBUTE_TYPES: &str = "attribute_types";
    pub const ATTRIBUTE_NESTED: &str = "attribute_nested";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const EVENTS: &str = "events";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const LINKS: &str = "links";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_ATTRIBUTE_TYPES: &str = "resource_attribute_types";
    pub const RESOURCE_ATTRIBUTE_NESTED: &str = "resource_attribute_nested";
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_ENTITY_REFS: &str = "resource_entity_refs";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const SCOPE_ATTRIBUTE_TYPES: &str = "scope_attribute_types";
    pub const SCOPE_ATTRIBUTE_NESTED: &str = "scope_attribute_nested";
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";

    /// Fields of an `events` element.
    pub const EVENT_TIME: &str = "time";
    /// Fields of a `links` element share `trace_id`, `span_id`, `trace_state`, `flags` and the attribute
    /// column names with the span row.
    pub const EVENT_NAME: &str = "name";
}

/// The timestamp type of every time column: nanoseconds, UTC, as OTLP sends them.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `map<string, string>` with the Parquet-standard entry names, so DuckDB reads it as a MAP.
pub fn attribute_map_type() -> DataType {
    DataType::Map(attribute_map_entries_field(), false)
}

/// The entries field of [`attribute_map_type`]; the encoder builds `MapArray`s with it.
pub fn attribute_map_entries_field() -> FieldRef {
    static ENTRIES: LazyLock<FieldRef> = LazyLock::new(|| {
        let key_value =
            Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, true)]);
        Arc::new(Field::new("key_value", DataType::Struct(key_value), false))
    });
    ENTRIES.clone()
}

/// The three columns that hold one attribute set losslessly (see `attributes.rs`), named with `prefix`.
fn attribute_fields(prefix: &str, nullable_map: bool) -> Vec<Field> {
    vec![
        Field::new(format!("{prefix}attributes"), attribute_map_type(), nullable_map),
        Field::new(format!("{prefix}attribute_types"), DataType::Binary, true),
        Field::new(format!("{prefix}attribute_nested"), DataType::Binary, true),
        Field::new(format!("{prefix}dropped_attributes_count"), DataType::UInt32, false),
    ]
}

/// Fields of one element of the `events` list.
pub fn event_fields() -> Fields {
    let mut fields =
        vec![Field::new(col::EVENT_TIME, timestamp_type(), false), Field::new(col::EVENT_NAME, DataType::Utf8, false)];
    fields.extend(attribute_fields("", false));
    Fields::from(fields)
}

/// Fields of one element of the `links` list. Link IDs are variable-length binary because OTLP does not
/// validate them and we keep whatever was sent.
pub fn link_fields() -> Fields {
    let mut fields = vec![
        Field::new(col::TRACE_ID, DataType::Binary, false),
        Field::new(col::SPAN_ID, DataType::Binary, false),
        Field::new(col::TRACE_STATE, DataType::Utf8, false),
        Field::new(col::FLAGS, DataType::UInt32, false),
    ];
    fields.extend(attribute_fields("", false));
    Fields::from(fields)
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Struct(fields), false)))
}

/// The span schema, format version 2. Column order is the order of the struct fields in OTLP, then the
/// resource and scope, so a `SELECT *` in DuckDB reads naturally.
///
/// A span's end is not a column: it is `start_time + duration_ns` (wrapping, so any pair of OTLP times
/// round-trips), derived by [`end_time_nanos`] wherever it is shown. Storing it cost 4–7 bytes per span
/// of a ~45-byte span (BENCHMARKS.md, issue 25 item 4); format version 1 stored it and its blocks are still
/// read (the column is skipped).
pub fn span_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            Field::new(col::TRACE_ID, DataType::FixedSizeBinary(16), false),
            Field::new(col::SPAN_ID, DataType::FixedSizeBinary(8), false),
            Field::new(col::PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
            Field::new(col::TRACE_STATE, DataType::Utf8, false),
            Field::new(col::NAME, DataType::Utf8, false),
            Field::new(col::KIND, DataType::Utf8, false),
            Field::new(col::FLAGS, DataType::UInt32, false),
            Field::new(col::START_TIME, timestamp_type(), false),
            Field::new(col::DURATION_NS, DataType::Int64, false),
            Field::new(col::STATUS_CODE, DataType::Utf8, true),
            Field::new(col::STATUS_MESSAGE, DataType::Utf8, true),
            Field::new(col::SERVICE_NAME, DataType::Utf8, true),
        ];
        fields.extend(attribute_fields("", false));
        fields.push(Field::new(col::EVENTS, list_of(event_fields()), false));
        fields.push(Field::new(col::DROPPED_EVENTS_COUNT, DataType::UInt32, false));
        fields.push(Field::new(col::LINKS, list_of(link_fields()), false));
        fields.push(Field::new(col::DROPPED_LINKS_COUNT, DataType::UInt32, false));
        // A null resource map means the span's ResourceSpans had no Resource at all.
        fields.extend(attribute_fields("resource_", true));
        fields.push(Field::new(col::RESOURCE_ENTITY_REFS, DataType::Binary, true));
        fields.push(Field::new(col::RESOURCE_SCHEMA_URL, DataType::Utf8, false));
        // A null scope name means the ScopeSpans had no InstrumentationScope.
        fields.push(Field::new(col::SCOPE_NAME, DataType::Utf8, true));
        fields.push(Field::new(col::SCOPE_VERSION, DataType::Utf8, false));
        fields.extend(attribute_fields("scope_", false));
        fields.push(Field::new(col::SCOPE_SCHEMA_URL, DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}
