//! A block's tag summary: the attribute keys of each scope, the distinct values of the keys that have few,
//! and the distinct span and service names, all bounded. It rides in `meta.json`, which the querier's
//! catalogue loads for every block anyway, so tag autocomplete answers from memory, and SQL filters on a
//! name or an attribute value skip blocks that cannot hold a match without opening them.
//!
//! A list that passed its bound is marked incomplete (and its values dropped): readers must treat it as
//! "anything may be here". Built from span rows in the stored schema by the block writer and by
//! compaction; read by `sql` (pruning) and `search` (tags).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, ListArray, MapArray, RecordBatch, StringArray, StructArray};
use serde::{Deserialize, Serialize};

use crate::spans::SpanFormatError;
use crate::spans::attributes::tag;
use crate::spans::schema::col;

/// Distinct values kept per attribute key: enough for methods, status codes, environments, regions.
pub const MAX_VALUES_PER_KEY: usize = 64;
/// Longest value (and key) kept, in bytes: longer ones are URLs, queries, messages, never autocompleted.
pub const MAX_VALUE_BYTES: usize = 256;
/// Keys kept per scope: a block with more has generated keys, and its key list is marked incomplete.
pub const MAX_KEYS_PER_SCOPE: usize = 1000;
/// Distinct span and service names kept: more than attribute values, because they are the most searched
/// and a block of a large system holds a few hundred operations.
pub const MAX_NAMES: usize = 256;

/// Where an attribute lives, as TraceQL scopes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagScope {
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl TagScope {
    pub const ALL: [TagScope; 5] =
        [TagScope::Resource, TagScope::Span, TagScope::Event, TagScope::Link, TagScope::Instrumentation];

    /// The scope's TraceQL (and Tempo API) name.
    pub fn name(self) -> &'static str {
        match self {
            TagScope::Span => "span",
            TagScope::Resource => "resource",
            TagScope::Event => "event",
            TagScope::Link => "link",
            TagScope::Instrumentation => "instrumentation",
        }
    }
}

/// The type of an attribute value as sent (the stored map holds text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    String,
    Int,
    Float,
    Bool,
}

impl ValueType {
    /// Tempo's name for the type in v2 tag values.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The distinct values of one key (or the names), by type. `incomplete` means the bound was passed, and
/// then no values are kept: the block may hold any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueList {
    #[serde(default, skip_serializing_if = "is_false")]
    pub incomplete: bool,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub string: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub int: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub float: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub bool: BTreeSet<String>,
}

impl ValueList {
    /// Whether the block may hold `text` as a value (in any type): always when the list is incomplete.
    pub fn may_contain(&self, text: &str) -> bool {
        self.incomplete || self.typed().any(|(_, values)| values.contains(text))
    }

    /// The values with their types.
    pub fn typed(&self) -> impl Iterator<Item = (ValueType, &BTreeSet<String>)> {
        [
            (ValueType::String, &self.string),
            (ValueType::Int, &self.int),
            (ValueType::Float, &self.float),
            (ValueType::Bool, &self.bool),
        ]
        .into_iter()
    }
}

/// The keys of one scope. `keys_incomplete` means some keys were left out (too many, or too long).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeTags {
    #[serde(default, skip_serializing_if = "is_false")]
    pub keys_incomplete: bool,
    /// Shared lists: a querier's catalogue holds one copy of each distinct list ([`TagInterner`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "shared::map")]
    pub keys: BTreeMap<String, Arc<ValueList>>,
}

impl ScopeTags {
    /// Whether the block may hold `key` with the value `text` in this scope.
    pub fn may_contain(&self, key: &str, text: &str) -> bool {
        match self.keys.get(key) {
            Some(values) => values.may_contain(text),
            None => self.keys_incomplete,
        }
    }

    fn is_empty(&self) -> bool {
        !self.keys_incomplete && self.keys.is_empty()
    }
}

/// The tag summary of one block (`tags` in `meta.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSummary {
    #[serde(default, skip_serializing_if = "ScopeTags::is_empty")]
    pub span: ScopeTags,
    #[serde(default, skip_serializing_if = "ScopeTags::is_empty")]
    pub resource: ScopeTags,
    #[serde(default, skip_serializing_if = "ScopeTags::is_empty")]
    pub event: ScopeTags,
    #[serde(default, skip_serializing_if = "ScopeTags::is_empty")]
    pub link: ScopeTags,
    #[serde(default, skip_serializing_if = "ScopeTags::is_empty")]
    pub instrumentation: ScopeTags,
    /// Span names (the `name` column).
    #[serde(default, with = "shared::value")]
    pub names: Arc<ValueList>,
    /// Service names (the `service_name` column; spans without one add nothing).
    #[serde(default, with = "shared::value")]
    pub services: Arc<ValueList>,
}

impl TagSummary {
    /// The summary of a block that holds the rows of all the blocks `summaries` describe (a compaction's
    /// output), built from the summaries instead of re-reading every attribute of every row. The same
    /// bounds apply; it may name values of rows the merge dropped as duplicates (copies of the same span,
    /// so in practice the same values), which only makes a "may contain" answer more cautious.
    pub fn union<'a>(summaries: impl IntoIterator<Item = &'a TagSummary>) -> TagSummary {
        let summaries: Vec<&TagSummary> = summaries.into_iter().collect();
        let mut builder = TagSummaryBuilder::new();
        for summary in &summaries {
            for scope in TagScope::ALL {
                builder.scopes.entry(scope).or_default().add_summary(summary.scope(scope));
            }
            builder.names.add_list(&summary.names, MAX_NAMES);
            builder.services.add_list(&summary.services, MAX_NAMES);
        }
        let mut union = builder.finish();
        // A block whose key list is incomplete may hold any key it does not name, with any value.
        for scope in TagScope::ALL {
            for summary in summaries.iter().filter(|summary| summary.scope(scope).keys_incomplete) {
                for (key, values) in &mut union.scope_mut(scope).keys {
                    if !summary.scope(scope).keys.contains_key(key) {
                        *values = Arc::new(ValueList { incomplete: true, ..ValueList::default() });
                    }
                }
            }
        }
        union
    }

    fn scope_mut(&mut self, scope: TagScope) -> &mut ScopeTags {
        match scope {
            TagScope::Span => &mut self.span,
            TagScope::Resource => &mut self.resource,
            TagScope::Event => &mut self.event,
            TagScope::Link => &mut self.link,
            TagScope::Instrumentation => &mut self.instrumentation,
        }
    }

    /// The keys of one scope.
    pub fn scope(&self, scope: TagScope) -> &ScopeTags {
        match scope {
            TagScope::Span => &self.span,
            TagScope::Resource => &self.resource,
            TagScope::Event => &self.event,
            TagScope::Link => &self.link,
            TagScope::Instrumentation => &self.instrumentation,
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The hasher of the builder's maps: every attribute entry of a block is looked up once, so it matters.
type FastHash = foldhash::fast::RandomState;

/// Distinct values of one key (or name) while rows are added: value text → the types it was seen with.
#[derive(Debug, Default)]
struct ValuesBuilder {
    incomplete: bool,
    values: HashMap<String, u8, FastHash>,
    /// The last text added and its type bit: sorted and grouped rows repeat it, and then no lookup is
    /// needed (the buffer is reused, so remembering it allocates nothing).
    last: String,
    last_type: u8,
}

impl ValuesBuilder {
    fn add(&mut self, text: &str, value_type: ValueType, max_values: usize) {
        if self.incomplete {
            return;
        }
        if self.last_type == value_type.bit() && self.last == text {
            return;
        }
        self.last.clear();
        self.last.push_str(text);
        self.last_type = value_type.bit();
        if let Some(types) = self.values.get_mut(text) {
            *types |= value_type.bit();
            return;
        }
        if text.len() > MAX_VALUE_BYTES || self.values.len() >= max_values {
            self.give_up();
            return;
        }
        self.values.insert(text.to_owned(), value_type.bit());
    }

    /// Every value of `list` (another block's), or its incompleteness.
    fn add_list(&mut self, list: &ValueList, max_values: usize) {
        if list.incomplete {
            return self.give_up();
        }
        for (value_type, values) in list.typed() {
            values.iter().for_each(|text| self.add(text, value_type, max_values));
        }
    }

    /// The block may hold values this list does not name.
    fn give_up(&mut self) {
        self.incomplete = true;
        self.values = HashMap::default();
    }

    fn finish(self) -> ValueList {
        let mut list = ValueList { incomplete: self.incomplete, ..ValueList::default() };
        for (text, types) in self.values {
            for value_type in [ValueType::String, ValueType::Int, ValueType::Float, ValueType::Bool] {
                if types & value_type.bit() != 0 {
                    let set = match value_type {
                        ValueType::String => &mut list.string,
                        ValueType::Int => &mut list.int,
                        ValueType::Float => &mut list.float,
                        ValueType::Bool => &mut list.bool,
                    };
                    set.insert(text.clone());
                }
            }
        }
        list
    }
}

#[derive(Debug, Default)]
struct ScopeBuilder {
    keys_incomplete: bool,
    keys: HashMap<String, ValuesBuilder, FastHash>,
}

impl ScopeBuilder {
    /// One attribute entry: `value` is `None` for an empty value (stored NULL, which no filter matches).
    fn add(&mut self, key: &str, value: Option<&str>, type_tag: u8) {
        if let Some(entry) = self.keys.get_mut(key) {
            return add_value(entry, value, type_tag);
        }
        if let Some(entry) = self.entry(key) {
            add_value(entry, value, type_tag);
        }
    }

    /// Every key and value of `tags`, one scope of another block's summary. Values of an incomplete list
    /// stay unknown (the key's list becomes incomplete); keys the other block left out are handled by
    /// [`TagSummary::union`], which sees all the summaries.
    fn add_summary(&mut self, tags: &ScopeTags) {
        self.keys_incomplete |= tags.keys_incomplete;
        for (key, list) in &tags.keys {
            if let Some(entry) = self.entry(key) {
                entry.add_list(list, MAX_VALUES_PER_KEY);
            }
        }
    }

    /// The values of `key`, a new entry if the scope has room for it (else the scope's key list is
    /// marked incomplete and `None` returned).
    fn entry(&mut self, key: &str) -> Option<&mut ValuesBuilder> {
        if !self.keys.contains_key(key) {
            if key.len() > MAX_VALUE_BYTES || self.keys.len() >= MAX_KEYS_PER_SCOPE {
                self.keys_incomplete = true;
                return None;
            }
            self.keys.insert(key.to_owned(), ValuesBuilder::default());
        }
        self.keys.get_mut(key)
    }

    /// Every entry of one stored attribute set (`map` row `row`, typed by `types`, NULL = all strings).
    fn add_row(&mut self, map: &MapArray, keys: &StringArray, values: &StringArray, types: &BinaryArray, row: usize) {
        if map.is_null(row) {
            return;
        }
        let offsets = map.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let tags = types.is_valid(row).then(|| types.value(row));
        for entry in start..end {
            let type_tag = tags.and_then(|t| t.get(entry - start).copied()).unwrap_or(tag::STRING);
            let value = values.is_valid(entry).then(|| values.value(entry));
            self.add(keys.value(entry), value, type_tag);
        }
    }

    fn finish(self) -> ScopeTags {
        ScopeTags {
            keys_incomplete: self.keys_incomplete,
            keys: self.keys.into_iter().map(|(key, values)| (key, Arc::new(values.finish()))).collect(),
        }
    }
}

/// One value of a key, by its stored type tag.
fn add_value(entry: &mut ValuesBuilder, value: Option<&str>, type_tag: u8) {
    let Some(text) = value else { return };
    match type_tag {
        tag::STRING => entry.add(text, ValueType::String, MAX_VALUES_PER_KEY),
        tag::INT => entry.add(text, ValueType::Int, MAX_VALUES_PER_KEY),
        tag::DOUBLE => entry.add(text, ValueType::Float, MAX_VALUES_PER_KEY),
        tag::BOOL => entry.add(text, ValueType::Bool, MAX_VALUES_PER_KEY),
        // Bytes, arrays and maps are stored as base64 or JSON text: never autocompleted, but a filter
        // could still compare that text, so the key's list must not claim to be complete.
        _ => entry.give_up(),
    }
}

/// Whether rows `a` and `b` hold the same entries with the same types: the spans of one resource carry
/// the same resource attributes, and comparing them is much cheaper than looking each up again.
fn same_entries(
    map: &MapArray,
    keys: &StringArray,
    values: &StringArray,
    types: &BinaryArray,
    a: usize,
    b: usize,
) -> bool {
    let offsets = map.value_offsets();
    let (a_start, a_end) = (offsets[a] as usize, offsets[a + 1] as usize);
    let (b_start, b_end) = (offsets[b] as usize, offsets[b + 1] as usize);
    if a_end - a_start != b_end - b_start || map.is_null(a) || types.is_valid(a) != types.is_valid(b) {
        return false;
    }
    if types.is_valid(a) && types.value(a) != types.value(b) {
        return false;
    }
    (a_start..a_end).zip(b_start..b_end).all(|(x, y)| {
        keys.value(x) == keys.value(y)
            && values.is_valid(x) == values.is_valid(y)
            && (values.is_null(x) || values.value(x) == values.value(y))
    })
}

/// Builds a [`TagSummary`] from span rows (stored schema), batch by batch, in any order.
#[derive(Debug, Default)]
pub struct TagSummaryBuilder {
    scopes: HashMap<TagScope, ScopeBuilder, FastHash>,
    names: ValuesBuilder,
    services: ValuesBuilder,
}

impl TagSummaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every span of `batch`.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<(), SpanFormatError> {
        for (map_column, types_column, scope) in [
            (col::ATTRIBUTES, col::ATTRIBUTE_TYPES, TagScope::Span),
            (col::RESOURCE_ATTRIBUTES, col::RESOURCE_ATTRIBUTE_TYPES, TagScope::Resource),
            (col::SCOPE_ATTRIBUTES, col::SCOPE_ATTRIBUTE_TYPES, TagScope::Instrumentation),
        ] {
            let map = column(batch, map_column)?.as_map_opt().ok_or_else(|| wrong_type(map_column))?;
            let types = column(batch, types_column)?.as_binary_opt::<i32>().ok_or_else(|| wrong_type(types_column))?;
            self.add_maps(scope, map, types)?;
        }
        for (list_column, scope) in [(col::EVENTS, TagScope::Event), (col::LINKS, TagScope::Link)] {
            let list: &ListArray = column(batch, list_column)?.as_list_opt().ok_or_else(|| wrong_type(list_column))?;
            let elements: &StructArray = list.values().as_struct_opt().ok_or_else(|| wrong_type(list_column))?;
            let map = elements
                .column_by_name(col::ATTRIBUTES)
                .and_then(|c| c.as_map_opt())
                .ok_or_else(|| wrong_type(list_column))?;
            let types = elements
                .column_by_name(col::ATTRIBUTE_TYPES)
                .and_then(|c| c.as_binary_opt::<i32>())
                .ok_or_else(|| wrong_type(list_column))?;
            // Only the elements the rows reach (a sliced batch shares its list's values).
            let offsets = list.value_offsets();
            let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
            self.add_maps_range(scope, map, types, first..last)?;
        }
        let names = column(batch, col::NAME)?.as_string_opt::<i32>().ok_or_else(|| wrong_type(col::NAME))?;
        let services =
            column(batch, col::SERVICE_NAME)?.as_string_opt::<i32>().ok_or_else(|| wrong_type(col::SERVICE_NAME))?;
        for name in names.iter().flatten() {
            self.names.add(name, ValueType::String, MAX_NAMES);
        }
        for service in services.iter().flatten() {
            self.services.add(service, ValueType::String, MAX_NAMES);
        }
        Ok(())
    }

    fn add_maps(&mut self, scope: TagScope, map: &MapArray, types: &BinaryArray) -> Result<(), SpanFormatError> {
        self.add_maps_range(scope, map, types, 0..map.len())
    }

    fn add_maps_range(
        &mut self,
        scope: TagScope,
        map: &MapArray,
        types: &BinaryArray,
        rows: std::ops::Range<usize>,
    ) -> Result<(), SpanFormatError> {
        let keys = map.keys().as_string_opt::<i32>().ok_or_else(|| wrong_type("attribute keys"))?;
        let values = map.values().as_string_opt::<i32>().ok_or_else(|| wrong_type("attribute values"))?;
        let builder = self.scopes.entry(scope).or_default();
        for row in rows.clone() {
            if row > rows.start && same_entries(map, keys, values, types, row - 1, row) {
                continue;
            }
            builder.add_row(map, keys, values, types, row);
        }
        Ok(())
    }

    /// The summary of every span added.
    pub fn finish(mut self) -> TagSummary {
        let mut scope = |scope| self.scopes.remove(&scope).map(ScopeBuilder::finish).unwrap_or_default();
        TagSummary {
            span: scope(TagScope::Span),
            resource: scope(TagScope::Resource),
            event: scope(TagScope::Event),
            link: scope(TagScope::Link),
            instrumentation: scope(TagScope::Instrumentation),
            names: Arc::new(self.names.finish()),
            services: Arc::new(self.services.finish()),
        }
    }
}

/// Keeps one copy of each distinct tag summary and value list for a querier's catalogue, which holds a
/// summary for every block it knows. Blocks of one tenant repeat most lists (methods, status codes,
/// environments, incomplete lists of high-cardinality keys) and often whole summaries, so shared copies
/// cut the catalogue's memory per block several times over while each block keeps its own answer.
#[derive(Debug, Default)]
pub struct TagInterner {
    summaries: HashSet<Arc<TagSummary>>,
    lists: HashSet<Arc<ValueList>>,
}

impl TagInterner {
    /// The shared copy of `summary`: an equal one already held, or `summary` itself with its lists shared.
    pub fn intern(&mut self, summary: Arc<TagSummary>) -> Arc<TagSummary> {
        if let Some(known) = self.summaries.get(&summary) {
            return Arc::clone(known);
        }
        let mut owned = Arc::unwrap_or_clone(summary);
        for scope in TagScope::ALL {
            for list in owned.scope_mut(scope).keys.values_mut() {
                *list = self.list(list);
            }
        }
        owned.names = self.list(&owned.names);
        owned.services = self.list(&owned.services);
        let shared = Arc::new(owned);
        self.summaries.insert(Arc::clone(&shared));
        shared
    }

    fn list(&mut self, list: &Arc<ValueList>) -> Arc<ValueList> {
        if let Some(known) = self.lists.get(list) {
            return Arc::clone(known);
        }
        self.lists.insert(Arc::clone(list));
        Arc::clone(list)
    }

    /// Drops the copies no block holds any more (the blocks were deleted, or replaced and slimmed).
    pub fn forget_unused(&mut self) {
        self.summaries.retain(|summary| Arc::strong_count(summary) > 1);
        self.lists.retain(|list| Arc::strong_count(list) > 1);
    }

    /// Estimated heap bytes held, for the catalogue's gauge: the distinct summaries (their key maps) and
    /// lists, summed when asked (a few thousand entries at most, read once per scrape).
    pub fn bytes(&self) -> usize {
        self.summaries.iter().map(|summary| summary_bytes(summary)).sum::<usize>()
            + self.lists.iter().map(|list| list_bytes(list)).sum::<usize>()
    }

    /// Distinct summaries and lists held.
    pub fn len(&self) -> (usize, usize) {
        (self.summaries.len(), self.lists.len())
    }
}

/// Per stored string or map entry: the allocation's header and rounding plus a B-tree node's share.
const ENTRY_OVERHEAD_BYTES: usize = 48;

fn list_bytes(list: &ValueList) -> usize {
    let strings: usize =
        list.typed().flat_map(|(_, values)| values.iter()).map(|v| v.len() + ENTRY_OVERHEAD_BYTES).sum();
    std::mem::size_of::<ValueList>() + strings
}

fn summary_bytes(summary: &TagSummary) -> usize {
    let keys: usize = TagScope::ALL
        .iter()
        .flat_map(|scope| summary.scope(*scope).keys.keys())
        .map(|key| key.len() + ENTRY_OVERHEAD_BYTES + std::mem::size_of::<Arc<ValueList>>())
        .sum();
    std::mem::size_of::<TagSummary>() + keys
}

/// Serde for the shared (`Arc`) parts of a summary (and `BlockMeta::tags`): the JSON is the same as for
/// owned values.
pub(super) mod shared {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub mod value {
        use super::*;

        pub fn serialize<T: Serialize, S: Serializer>(value: &Arc<T>, serializer: S) -> Result<S::Ok, S::Error> {
            T::serialize(value, serializer)
        }

        pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Arc<T>, D::Error> {
            T::deserialize(deserializer).map(Arc::new)
        }
    }

    pub mod map {
        use super::*;

        pub fn serialize<T: Serialize, S: Serializer>(
            map: &BTreeMap<String, Arc<T>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serializer.collect_map(map.iter().map(|(key, value)| (key, &**value)))
        }

        pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<BTreeMap<String, Arc<T>>, D::Error> {
            let owned = BTreeMap::<String, T>::deserialize(deserializer)?;
            Ok(owned.into_iter().map(|(key, value)| (key, Arc::new(value))).collect())
        }
    }

    pub mod option {
        use super::*;

        pub fn serialize<T: Serialize, S: Serializer>(
            value: &Option<Arc<T>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            value.as_deref().serialize(serializer)
        }

        pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Arc<T>>, D::Error> {
            Ok(Option::<T>::deserialize(deserializer)?.map(Arc::new))
        }
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, SpanFormatError> {
    batch.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| SpanFormatError::MissingColumn(name.to_owned()))
}

fn wrong_type(name: &str) -> SpanFormatError {
    SpanFormatError::Corrupt(format!("{name} does not have the span schema's type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_with(entries: &[(&str, Option<&str>, u8)]) -> ScopeTags {
        let mut builder = ScopeBuilder::default();
        for (key, value, type_tag) in entries {
            builder.add(key, *value, *type_tag);
        }
        builder.finish()
    }

    #[test]
    fn values_are_kept_with_their_types_up_to_the_bound_then_marked_incomplete() {
        let typed = scope_with(&[
            ("http.status_code", Some("500"), tag::INT),
            ("http.status_code", Some("200"), tag::INT),
            ("http.status_code", Some("500"), tag::STRING),
            ("ratio", Some("0.5"), tag::DOUBLE),
            ("cached", Some("true"), tag::BOOL),
            ("empty", None, tag::EMPTY),
        ]);
        let status = &typed.keys["http.status_code"];
        assert_eq!(status.int, BTreeSet::from(["200".to_owned(), "500".to_owned()]));
        assert_eq!(status.string, BTreeSet::from(["500".to_owned()]));
        assert!(!status.incomplete && status.may_contain("200") && !status.may_contain("404"));
        assert!(typed.keys["ratio"].float.contains("0.5") && typed.keys["cached"].bool.contains("true"));
        assert_eq!(*typed.keys["empty"], ValueList::default(), "a key with only empty values: known, no values");

        let many: Vec<String> = (0..=MAX_VALUES_PER_KEY).map(|i| format!("v{i}")).collect();
        let entries: Vec<(&str, Option<&str>, u8)> =
            many.iter().map(|v| ("id", Some(v.as_str()), tag::STRING)).collect();
        let full = scope_with(&entries[..MAX_VALUES_PER_KEY]);
        assert!(!full.keys["id"].incomplete && full.keys["id"].string.len() == MAX_VALUES_PER_KEY);
        let over = scope_with(&entries);
        assert!(over.keys["id"].incomplete, "one value over the bound");
        assert!(over.keys["id"].string.is_empty(), "an incomplete list keeps no values");
        assert!(over.may_contain("id", "anything"));
    }

    #[test]
    fn long_values_and_non_scalar_values_make_a_list_incomplete() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let fitting = "y".repeat(MAX_VALUE_BYTES);
        let scope = scope_with(&[
            ("url", Some(&long), tag::STRING),
            ("fits", Some(&fitting), tag::STRING),
            ("list", Some("[1,2]"), tag::ARRAY),
            ("raw", Some("AAE="), tag::BYTES),
        ]);
        assert!(scope.keys["url"].incomplete && !scope.keys["fits"].incomplete);
        assert!(scope.keys["list"].may_contain("[1,2]") && scope.keys["raw"].incomplete);
    }

    #[test]
    fn keys_past_the_bound_mark_the_scope_incomplete_so_absence_proves_nothing() {
        let keys: Vec<String> = (0..=MAX_KEYS_PER_SCOPE).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&str, Option<&str>, u8)> =
            keys.iter().map(|k| (k.as_str(), Some("v"), tag::STRING)).collect();
        let full = scope_with(&entries[..MAX_KEYS_PER_SCOPE]);
        assert!(!full.keys_incomplete && !full.may_contain("other", "v"));
        let over = scope_with(&entries);
        assert!(over.keys_incomplete && over.keys.len() == MAX_KEYS_PER_SCOPE);
        assert!(over.may_contain("other", "v"), "a key left out may be in the block");
        let long_key = "k".repeat(MAX_VALUE_BYTES + 1);
        assert!(scope_with(&[(&long_key, Some("v"), tag::STRING)]).keys_incomplete);
    }

    #[test]
    fn a_summary_of_synthetic_spans_names_their_keys_values_and_names() {
        let mut generator = crate::synth::TraceGenerator::new(3);
        let traces: Vec<_> = (0..50).flat_map(|_| generator.next_trace()).collect();
        let (batch, _) = crate::spans::encode_resource_spans(&traces).unwrap();
        let mut builder = TagSummaryBuilder::new();
        // Any slicing of the rows gives the same summary.
        builder.add_batch(&batch.slice(0, 10)).unwrap();
        builder.add_batch(&batch.slice(10, batch.num_rows() - 10)).unwrap();
        let sliced = builder.finish();
        let mut whole = TagSummaryBuilder::new();
        whole.add_batch(&batch).unwrap();
        let summary = whole.finish();
        assert_eq!(sliced, summary);
        // Row by row, no row is skipped as a repeat of the one before: the same summary.
        let mut by_row = TagSummaryBuilder::new();
        for row in 0..batch.num_rows() {
            by_row.add_batch(&batch.slice(row, 1)).unwrap();
        }
        assert_eq!(by_row.finish(), summary);
        assert!(summary.resource.keys.contains_key("service.name"), "{:?}", summary.resource.keys.keys());
        assert!(!summary.span.keys.is_empty());
        assert!(!summary.services.incomplete && !summary.services.string.is_empty());
        assert!(!summary.names.string.is_empty());
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(serde_json::from_str::<TagSummary>(&json).unwrap(), summary);
    }

    fn summary_of(batch: &RecordBatch) -> TagSummary {
        let mut builder = TagSummaryBuilder::new();
        builder.add_batch(batch).unwrap();
        builder.finish()
    }

    #[test]
    fn the_union_of_parts_summaries_is_the_summary_of_the_whole() {
        let mut generator = crate::synth::TraceGenerator::new(11);
        let traces: Vec<_> = (0..80).flat_map(|_| generator.next_trace()).collect();
        let (batch, _) = crate::spans::encode_resource_spans(&traces).unwrap();
        let whole = summary_of(&batch);
        let cut = batch.num_rows() / 3;
        let parts = [summary_of(&batch.slice(0, cut)), summary_of(&batch.slice(cut, batch.num_rows() - cut))];
        assert_ne!(parts[0], whole, "each part alone misses something");
        assert_eq!(TagSummary::union(&parts), whole);
        assert_eq!(TagSummary::union([&whole, &whole]), whole, "a repeat adds nothing");
    }

    #[test]
    fn a_union_keeps_the_bounds_and_never_claims_what_an_incomplete_part_may_hold() {
        let values = |range: std::ops::Range<usize>| -> Vec<String> { range.map(|i| format!("v{i}")).collect() };
        let scope_of = |key: &str, texts: &[String]| {
            let entries: Vec<(&str, Option<&str>, u8)> =
                texts.iter().map(|v| (key, Some(v.as_str()), tag::STRING)).collect();
            scope_with(&entries)
        };
        let half = MAX_VALUES_PER_KEY / 2 + 1;
        let a = TagSummary { span: scope_of("id", &values(0..half)), ..TagSummary::default() };
        let b = TagSummary { span: scope_of("id", &values(half..2 * half)), ..TagSummary::default() };
        let union = TagSummary::union([&a, &b]);
        assert!(union.span.keys["id"].incomplete, "more distinct values than a list keeps");
        let both = TagSummary::union([&a, &a]);
        assert!(!both.span.keys["id"].incomplete && both.span.may_contain("id", "v0"));

        // A part that left keys out may hold "id" with any value: the union may not say otherwise.
        let keys: Vec<String> = (0..=MAX_KEYS_PER_SCOPE).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&str, Option<&str>, u8)> =
            keys.iter().map(|k| (k.as_str(), Some("v"), tag::STRING)).collect();
        let crowded = TagSummary { span: scope_with(&entries), ..TagSummary::default() };
        assert!(crowded.span.keys_incomplete);
        let union = TagSummary::union([&a, &crowded]);
        assert!(union.span.keys_incomplete);
        assert!(union.span.may_contain("id", "not-in-a"), "{:?}", union.span.keys.get("id"));
        assert!(union.span.may_contain("unknown", "x"));

        let names = |n: usize| TagSummary {
            names: ValueList { string: (0..n).map(|i| format!("op{i}")).collect(), ..ValueList::default() }.into(),
            ..TagSummary::default()
        };
        assert!(!TagSummary::union([&names(MAX_NAMES)]).names.incomplete);
        assert!(TagSummary::union([&names(MAX_NAMES), &names(MAX_NAMES + 1)]).names.incomplete);
        let unknown = TagSummary {
            services: ValueList { incomplete: true, ..ValueList::default() }.into(),
            ..TagSummary::default()
        };
        assert!(TagSummary::union([&names(1), &unknown]).services.incomplete);
    }

    #[test]
    fn the_interner_keeps_one_copy_of_equal_summaries_and_lists_and_frees_unused_ones() {
        let methods =
            scope_with(&[("http.method", Some("GET"), tag::STRING), ("http.method", Some("POST"), tag::STRING)]);
        let host = |name: &str| {
            let mut scope = methods.clone();
            scope.keys.insert(
                "host.name".into(),
                ValueList { string: [name.to_owned()].into(), ..Default::default() }.into(),
            );
            Arc::new(TagSummary { span: scope, ..TagSummary::default() })
        };
        let (a, a_again, b) = (host("a"), host("a"), host("b"));
        let mut interner = TagInterner::default();
        let a = interner.intern(a);
        assert!(Arc::ptr_eq(&a, &interner.intern(a_again)), "equal summaries: one copy");
        let b = interner.intern(b);
        assert!(!Arc::ptr_eq(&a, &b) && *a != *b, "each block keeps its own answer");
        assert!(Arc::ptr_eq(&a.span.keys["http.method"], &b.span.keys["http.method"]), "equal lists: one copy");
        // Lists: the methods, each host's, and the empty one both summaries' names and services are.
        assert_eq!(interner.len(), (2, 4));

        // The JSON is the same as for owned values.
        let json = serde_json::to_string(&*b).unwrap();
        assert!(json.contains(r#""http.method":{"string":["GET","POST"]}"#), "{json}");
        assert_eq!(serde_json::from_str::<TagSummary>(&json).unwrap(), *b);

        let held = interner.bytes();
        drop(b);
        interner.forget_unused();
        assert_eq!(interner.len(), (1, 3), "b's summary and host list are freed, the shared lists are kept");
        assert!(interner.bytes() < held && interner.bytes() > 0);
        drop((a, methods));
        interner.forget_unused();
        assert_eq!((interner.len(), interner.bytes()), ((0, 0), 0));
    }
}
