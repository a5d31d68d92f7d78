//! Size limits on what one span and one trace may bring in (issue 26, item 6), checked before the WAL
//! append so nothing refused is ever acknowledged or written:
//! - `max_attribute_bytes`: a span with an attribute key or value (of the span, its resource or scope,
//!   its events or links) longer than this is refused. Nested values (arrays, maps) count together, by
//!   their encoded size. Tempo truncates such values instead; spanlake stores spans losslessly, so it
//!   refuses the span and says why rather than keep a value the client did not send.
//! - `max_bytes_per_trace`: spans of a trace whose bytes in the tenant's open buffer (since its last
//!   block was cut) would pass this are refused, as Tempo's ingester refuses spans of a trace over its
//!   `max_bytes_per_trace`. The trace may grow again in the next block.
//!
//! Sizes are the Arrow data bytes of a span's row: strings, binaries and fixed-width values, through
//! its nested events, links and attribute maps.
//!
//! Owns the measuring and the decision; the ingester keeps the per-trace counts with its buffers.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::DataType;

use super::buffer::SpanKey;
use crate::ids::TraceId;
use crate::spans::SpanRejection;
use crate::spans::schema::col;

/// The limits in force (0 turns one off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    pub max_attribute_bytes: usize,
    pub max_bytes_per_trace: usize,
}

/// Default of `max_attribute_bytes`: far above what instrumentation sends (SQL statements, stack traces
/// are a few KiB), far below what makes merges and lookups of one block's rows heavy.
pub const DEFAULT_MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

/// Default of `max_bytes_per_trace`: Tempo's default (5 MB).
pub const DEFAULT_MAX_BYTES_PER_TRACE: usize = 5_000_000;

impl Default for SpanLimits {
    fn default() -> Self {
        Self { max_attribute_bytes: DEFAULT_MAX_ATTRIBUTE_BYTES, max_bytes_per_trace: DEFAULT_MAX_BYTES_PER_TRACE }
    }
}

/// What the limits need of each row of a batch, measured without any lock held.
#[derive(Debug)]
pub struct Measured {
    traces: Vec<Option<TraceId>>,
    bytes: Vec<usize>,
    largest_attribute: Vec<usize>,
}

/// The rows of a batch the limits refuse, each with its reason, and the bytes the kept rows add to
/// their traces.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Row index and why it was refused.
    pub refused: Vec<(usize, SpanRejection)>,
    /// Bytes of the kept rows by trace, to add to the tenant's counts once the batch is buffered.
    pub kept_bytes: HashMap<TraceId, usize>,
}

impl SpanLimits {
    /// True when neither limit is on.
    pub fn is_off(&self) -> bool {
        self.max_attribute_bytes == 0 && self.max_bytes_per_trace == 0
    }

    /// Measures every row of `batch`: a pass over each column's offsets, no copy.
    pub fn measure(&self, batch: &RecordBatch) -> Measured {
        let rows = batch.num_rows();
        let mut measured =
            Measured { traces: vec![None; rows], bytes: vec![0; rows], largest_attribute: vec![0; rows] };
        if let Some(ids) = batch.column_by_name(col::TRACE_ID).and_then(|c| c.as_fixed_size_binary_opt()) {
            for (row, trace) in measured.traces.iter_mut().enumerate() {
                *trace = TraceId::from_slice(ids.value(row)).ok();
            }
        }
        for (column, field) in batch.columns().iter().zip(batch.schema().fields()) {
            if self.max_bytes_per_trace > 0 {
                add_bytes(column.as_ref(), &mut measured.bytes);
            }
            if self.max_attribute_bytes > 0 {
                raise_to_largest_attribute(column.as_ref(), field.name(), &mut measured.largest_attribute);
            }
        }
        measured
    }

    /// Judges the measured rows in order, given the bytes each trace already holds in the tenant's open
    /// buffer: the first spans of a trace that fit are kept. Cheap, for use under the buffers' lock.
    pub fn judge(&self, measured: &Measured, held: &HashMap<TraceId, usize>) -> Verdict {
        let mut verdict = Verdict::default();
        for (row, trace) in measured.traces.iter().enumerate() {
            let largest = measured.largest_attribute[row];
            if self.max_attribute_bytes > 0 && largest > self.max_attribute_bytes {
                let rejection = SpanRejection::AttributeTooLarge { bytes: largest, limit: self.max_attribute_bytes };
                verdict.refused.push((row, rejection));
                continue;
            }
            let (Some(trace), true) = (trace, self.max_bytes_per_trace > 0) else { continue };
            let bytes = measured.bytes[row];
            let so_far = held.get(trace).copied().unwrap_or(0) + verdict.kept_bytes.get(trace).copied().unwrap_or(0);
            if so_far.saturating_add(bytes) > self.max_bytes_per_trace {
                verdict
                    .refused
                    .push((row, SpanRejection::TraceTooLarge { trace: *trace, limit: self.max_bytes_per_trace }));
                continue;
            }
            *verdict.kept_bytes.entry(*trace).or_default() += bytes;
        }
        verdict
    }
}

/// Widens `refused` to every row sharing a span key (`keys`, one per row) with a refused one, so the
/// rows kept and the WAL payload re-encoded without those keys (see `Ingester::screen`) hold exactly the
/// same spans.
pub fn refuse_duplicates(keys: &[SpanKey], refused: &mut Vec<(usize, SpanRejection)>) {
    let named: HashMap<SpanKey, SpanRejection> = refused.iter().map(|(row, why)| (keys[*row], why.clone())).collect();
    let already: std::collections::HashSet<usize> = refused.iter().map(|(row, _)| *row).collect();
    for (row, key) in keys.iter().enumerate().filter(|(row, _)| !already.contains(row)) {
        if let Some(why) = named.get(key) {
            refused.push((row, why.clone()));
        }
    }
    refused.sort_by_key(|(row, _)| *row);
}

/// The batch without the given rows.
pub fn without_rows(
    batch: &RecordBatch,
    rows: impl IntoIterator<Item = usize>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut keep = vec![true; batch.num_rows()];
    for row in rows {
        keep[row] = false;
    }
    arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep))
}

/// The element ranges of a list or map array's children, one per element.
fn child_ranges(offsets: &[i32]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    offsets.windows(2).map(|pair| pair[0] as usize..pair[1] as usize)
}

/// Adds the data bytes of each element of `array` (strings, binaries, fixed-width values, through every
/// nesting level) to `out`, which has one place per element.
fn add_bytes(array: &dyn Array, out: &mut [usize]) {
    let nested = |values: &dyn Array, offsets: &[i32], out: &mut [usize]| {
        let mut inner = vec![0; values.len()];
        add_bytes(values, &mut inner);
        for (slot, range) in out.iter_mut().zip(child_ranges(offsets)) {
            *slot += inner[range].iter().sum::<usize>();
        }
    };
    match array.data_type() {
        DataType::Utf8 => {
            for (slot, pair) in out.iter_mut().zip(array.as_string::<i32>().value_offsets().windows(2)) {
                *slot += (pair[1] - pair[0]) as usize;
            }
        }
        DataType::Binary => {
            for (slot, pair) in out.iter_mut().zip(array.as_binary::<i32>().value_offsets().windows(2)) {
                *slot += (pair[1] - pair[0]) as usize;
            }
        }
        DataType::Struct(_) => array.as_struct().columns().iter().for_each(|child| add_bytes(child.as_ref(), out)),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            nested(list.values().as_ref(), list.value_offsets(), out);
        }
        DataType::Map(..) => {
            let map = array.as_map();
            nested(map.entries(), map.value_offsets(), out);
        }
        other => {
            let width = match other {
                DataType::FixedSizeBinary(width) => *width as usize,
                other => other.primitive_width().unwrap_or(8),
            };
            out.iter_mut().for_each(|slot| *slot += width);
        }
    }
}

/// Raises each place of `out` (one per element of `array`, a column named `name`) to the longest
/// attribute key or value in it: the entries of attribute maps, and each element's encoded nested
/// values (`…attribute_nested`).
fn raise_to_largest_attribute(array: &dyn Array, name: &str, out: &mut [usize]) {
    match array.data_type() {
        DataType::Map(..) => {
            let map = array.as_map();
            let entries = map.entries();
            let mut longest = vec![0; entries.len()];
            for column in entries.columns() {
                if let Some(strings) = column.as_string_opt::<i32>() {
                    for (slot, pair) in longest.iter_mut().zip(strings.value_offsets().windows(2)) {
                        *slot = (*slot).max((pair[1] - pair[0]) as usize);
                    }
                }
            }
            for (slot, range) in out.iter_mut().zip(child_ranges(map.value_offsets())) {
                *slot = (*slot).max(longest[range].iter().copied().max().unwrap_or(0));
            }
        }
        DataType::Binary if name.ends_with("attribute_nested") => {
            for (slot, pair) in out.iter_mut().zip(array.as_binary::<i32>().value_offsets().windows(2)) {
                *slot = (*slot).max((pair[1] - pair[0]) as usize);
            }
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let mut inner = vec![0; list.values().len()];
            raise_to_largest_attribute(list.values().as_ref(), name, &mut inner);
            for (slot, range) in out.iter_mut().zip(child_ranges(list.value_offsets())) {
                *slot = (*slot).max(inner[range].iter().copied().max().unwrap_or(0));
            }
        }
        DataType::Struct(fields) => {
            for (child, field) in array.as_struct().columns().iter().zip(fields) {
                raise_to_largest_attribute(child.as_ref(), field.name(), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::span::Event;

    use super::*;
    use crate::synth::TraceGenerator;

    fn string(key: &str, value: String) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
            ..Default::default()
        }
    }

    #[test]
    fn attributes_over_the_limit_anywhere_in_a_span_refuse_it() {
        let limits = SpanLimits { max_attribute_bytes: 1000, max_bytes_per_trace: 0 };
        for place in ["span", "event", "resource", "nested"] {
            let mut resource_spans = TraceGenerator::new(3).next_trace();
            let span = &mut resource_spans[0].scope_spans[0].spans[0];
            let big = "x".repeat(1001);
            match place {
                "span" => span.attributes.push(string("big", big)),
                "event" => span.events.push(Event {
                    name: "e".into(),
                    attributes: vec![string("big", big)],
                    ..Default::default()
                }),
                "resource" => resource_spans[0].resource.get_or_insert_default().attributes.push(string("big", big)),
                _ => span.attributes.push(KeyValue {
                    key: "list".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: (0..3)
                                .map(|_| AnyValue { value: Some(any_value::Value::StringValue("y".repeat(400))) })
                                .collect(),
                        })),
                    }),
                    ..Default::default()
                }),
            }
            let (batch, _) = crate::spans::encode_resource_spans(&resource_spans).unwrap();
            let verdict = limits.judge(&limits.measure(&batch), &HashMap::new());
            let refused: Vec<usize> = verdict.refused.iter().map(|(row, _)| *row).collect();
            let spans_of_first_resource = resource_spans[0].scope_spans.iter().map(|s| s.spans.len()).sum::<usize>();
            match place {
                "resource" => assert_eq!(refused, (0..spans_of_first_resource).collect::<Vec<_>>(), "{place}"),
                _ => assert_eq!(refused, vec![0], "{place}"),
            }
            assert!(matches!(verdict.refused[0].1, SpanRejection::AttributeTooLarge { limit: 1000, .. }), "{place}");
        }
        let (batch, _) = crate::spans::encode_resource_spans(&TraceGenerator::new(3).next_trace()).unwrap();
        assert!(limits.judge(&limits.measure(&batch), &HashMap::new()).refused.is_empty(), "ordinary spans pass");
    }

    #[test]
    fn a_trace_past_its_byte_limit_keeps_its_first_spans_and_refuses_the_rest() {
        let (batch, _) = crate::spans::encode_resource_spans(&TraceGenerator::new(4).next_trace()).unwrap();
        let judge = |limit: usize, held: &HashMap<TraceId, usize>| {
            let limits = SpanLimits { max_attribute_bytes: 0, max_bytes_per_trace: limit };
            limits.judge(&limits.measure(&batch), held)
        };
        let everything = judge(usize::MAX, &HashMap::new());
        assert!(everything.refused.is_empty());
        let (&trace, &total) = everything.kept_bytes.iter().next().unwrap();
        assert!(total > 0 && batch.num_rows() > 2);

        let half = judge(total / 2, &HashMap::new());
        assert!(!half.refused.is_empty() && half.refused.len() < batch.num_rows(), "{:?}", half.refused.len());
        assert!(half.kept_bytes[&trace] <= total / 2);
        let first_refused = half.refused[0].0;
        assert!(half.refused.iter().all(|(row, _)| *row >= first_refused));

        // Bytes the buffer already holds for the trace count too.
        let held = HashMap::from([(trace, total)]);
        let full = judge(total, &held);
        assert_eq!(full.refused.len(), batch.num_rows());
        assert!(matches!(full.refused[0].1, SpanRejection::TraceTooLarge { limit, .. } if limit == total));
        assert_eq!(without_rows(&batch, full.refused.iter().map(|(row, _)| *row)).unwrap().num_rows(), 0);
    }
}
