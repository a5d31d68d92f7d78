//! The terminal waterfall of one trace: what `spanlake trace <ID>` prints.
//!
//! A trace read on a terminal has to answer "what called what, what was slow, what failed" at a glance,
//! the way Jaeger's or Grafana's trace view does, but in plain text that stays readable at 80 columns.
//! So every line is built to a fixed column layout (tree and name, duration, status mark, timing bar),
//! measured in display columns rather than bytes or chars, and every piece of span data is treated as
//! hostile: names may be wide, contain control characters or escape sequences, parent links may form
//! cycles, and timestamps may be anything a broken client sends. Nothing here panics or loops on such
//! input; the worst it does is show a span somewhere less informative (a cycle member shown as a root).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The spans of a trace as the terminal waterfall needs them: service from the resource's
/// `service.name`, errors from the status code.
pub fn spans_of(resource_spans: &[ResourceSpans]) -> Vec<WaterfallSpan> {
    let mut spans = Vec::new();
    for rs in resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|resource| spanlake::spans::encode::service_name_of(&resource.attributes))
            .unwrap_or_default();
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let status = span.status.as_ref();
            spans.push(WaterfallSpan {
                span_id: span.span_id.as_slice().try_into().unwrap_or_default(),
                // Some clients send eight zero bytes for "no parent".
                parent_span_id: span.parent_span_id.as_slice().try_into().ok().filter(|id| *id != [0u8; 8]),
                service: service.to_owned(),
                name: span.name.clone(),
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano,
                is_error: status.is_some_and(|s| s.code == StatusCode::Error as i32),
                status_message: status.map(|s| s.message.clone()).unwrap_or_default(),
            });
        }
    }
    spans
}

/// One span as the waterfall needs it; the caller converts from OTLP.
///
/// It exists so the renderer depends on nothing but the handful of fields a waterfall shows: the OTLP and
/// storage types can change without touching the layout code, and tests can build traces by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct WaterfallSpan {
    /// Identifies the span so children can find it; duplicates are tolerated (children attach to the
    /// earliest-starting one).
    pub span_id: [u8; 8],
    /// None for a root span. A parent that is absent from the trace, or the span itself, also makes it a root,
    /// because a span with nowhere to hang must still be shown.
    pub parent_span_id: Option<[u8; 8]>,
    /// The emitting service, so the reader sees which hop of a request is slow; may be empty.
    pub service: String,
    /// The operation name, the main thing a reader scans for.
    pub name: String,
    /// Start time; positions the span's bar within the trace.
    pub start_unix_nano: u64,
    /// End time; may be < start for broken clients, in which case the duration is taken as 0 rather than
    /// rejecting the trace.
    pub end_unix_nano: u64,
    /// Whether the span failed, so failures stand out in the status column and get a footer line.
    pub is_error: bool,
    /// Why the span failed; shown under the tree so the reader does not need another tool. May be empty.
    pub status_message: String,
}

/// Narrowest layout we draw: below this the bar and the name can't both stay useful.
const MIN_WIDTH: usize = 40;
/// Widest layout we draw, so an absurd width can't make us allocate absurd lines.
const MAX_WIDTH: usize = 1000;
/// Display columns of the duration column; `format_duration` never exceeds it.
const DURATION_COLS: usize = 7;
/// Columns between the name column and the bar: space, duration, space, status mark, space.
const GAP_COLS: usize = 1 + DURATION_COLS + 1 + 1 + 1;
/// Status mark for a failed span (and the footer's line marker).
const ERROR_MARK: char = '✗';
/// Left-aligned blocks of 1/8 .. 8/8 of a cell, indexed by eighths.
const LEFT_EIGHTHS: [char; 9] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
/// What a bar cell outside the span's extent shows: a faint grid, so the bar column's extent stays visible.
const BAR_BACKGROUND: char = '·';

/// Renders the waterfall of one trace as lines of at most `width` display columns (min width 40; smaller
/// is treated as 40), each ending with '\n'.
///
/// It returns a `String` rather than writing to a stream so the command can print it in one write and
/// tests can inspect it; the width is a parameter because only the caller knows the terminal.
pub fn render(trace_id_hex: &str, spans: &[WaterfallSpan], width: usize) -> String {
    let layout = Layout::new(width);
    let mut out = String::new();

    let (trace_start, trace_end) = trace_bounds(spans);
    let total = trace_end - trace_start;
    for line in header(trace_id_hex, spans, total, layout.width) {
        push_line(&mut out, &line, layout.width);
    }

    if spans.is_empty() {
        push_line(&mut out, "(no spans)", layout.width);
        return out;
    }

    push_line(&mut out, &axis_line(&layout, total), layout.width);

    let rows = tree_rows(spans, layout.max_indent_levels);
    for row in &rows {
        let Some(span) = spans.get(row.index) else { continue };
        push_line(&mut out, &span_line(&layout, &row.prefix, span, trace_start, total), layout.width);
    }

    let failures: Vec<&WaterfallSpan> = rows
        .iter()
        .filter_map(|row| spans.get(row.index))
        .filter(|span| span.is_error && !span.status_message.trim().is_empty())
        .collect();
    if !failures.is_empty() {
        out.push('\n');
        for span in failures {
            let mut line = String::new();
            line.push(ERROR_MARK);
            line.push(' ');
            if !span.service.is_empty() {
                line.push_str(&clean(&span.service));
                line.push(' ');
            }
            line.push_str(&clean(&span.name));
            line.push_str(": ");
            line.push_str(clean(&span.status_message).trim());
            push_line(&mut out, &line, layout.width);
        }
    }
    out
}

/// Column widths for one rendering, derived from the terminal width.
#[derive(Clone, Copy, Debug)]
struct Layout {
    width: usize,
    /// Display columns of the tree-and-name column.
    name_cols: usize,
    /// Display columns (cells) of the timing bar.
    bar_cols: usize,
    /// Tree levels drawn before deeper levels are summarised by a depth label.
    max_indent_levels: usize,
}

impl Layout {
    fn new(width: usize) -> Self {
        let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
        let bar_cols = (width * 3 / 10).max(10);
        let name_cols = width - GAP_COLS - bar_cols;
        // Keep at least a third of the name column (and never less than 8 columns) for the text itself.
        let min_text = (name_cols / 3).max(8);
        let max_indent_levels = (name_cols.saturating_sub(min_text) / 3).max(2);
        Layout { width, name_cols, bar_cols, max_indent_levels }
    }

    fn bar_start_col(&self) -> usize {
        self.name_cols + GAP_COLS
    }
}

/// One span's place in the tree: which span, and its drawn tree prefix.
#[derive(Clone, Debug)]
struct Row {
    index: usize,
    prefix: String,
}

fn span_end(span: &WaterfallSpan) -> u64 {
    span.end_unix_nano.max(span.start_unix_nano)
}

/// Earliest start and latest end over all spans; `(0, 0)` for none.
fn trace_bounds(spans: &[WaterfallSpan]) -> (u64, u64) {
    let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let end = spans.iter().map(span_end).max().unwrap_or(0);
    (start, end.max(start))
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}

/// `Trace <id>  <N> spans, <S> services, <duration>[, <E> errors]`, split after the ID when the width is too
/// narrow for both, because the counts matter more than the tail of the ID.
fn header(trace_id_hex: &str, spans: &[WaterfallSpan], total: u64, width: usize) -> Vec<String> {
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).filter(|s| !s.is_empty()).collect();
    let errors = spans.iter().filter(|s| s.is_error).count();
    let mut stats =
        format!("{}, {}, {}", plural(spans.len(), "span"), plural(services.len(), "service"), format_duration(total));
    if errors > 0 {
        stats.push_str(", ");
        stats.push_str(&plural(errors, "error"));
    }
    let id = clean(trace_id_hex);
    let one_line = format!("Trace {id}  {stats}");
    if one_line.width() <= width {
        return vec![one_line];
    }
    vec![format!("Trace {}", fit(&id, width.saturating_sub("Trace ".len()))), stats]
}

/// The time axis over the bar column: `0 ───── <total>`.
fn axis_line(layout: &Layout, total: u64) -> String {
    let label = format_duration(total);
    let bar = layout.bar_cols;
    let mut line = " ".repeat(layout.bar_start_col());
    let label_cols = label.width();
    if bar >= label_cols + 4 {
        line.push_str("0 ");
        line.extend(std::iter::repeat_n('─', bar - label_cols - 3));
        line.push(' ');
    } else {
        line.push('0');
        line.extend(std::iter::repeat_n(' ', bar.saturating_sub(label_cols + 1)));
    }
    line.push_str(&label);
    line
}

fn span_line(layout: &Layout, prefix: &str, span: &WaterfallSpan, trace_start: u64, total: u64) -> String {
    let prefix = fit(prefix, layout.name_cols);
    let text_budget = layout.name_cols - prefix.width();
    let mut line = prefix;
    line.push_str(&span_label(&span.service, &span.name, text_budget));
    pad_to(&mut line, layout.name_cols);

    let duration = format_duration(span_end(span) - span.start_unix_nano);
    line.push(' ');
    line.extend(std::iter::repeat_n(' ', DURATION_COLS.saturating_sub(duration.width())));
    line.push_str(&duration);
    line.push(' ');
    line.push(if span.is_error { ERROR_MARK } else { ' ' });
    line.push(' ');
    line.push_str(&bar(span.start_unix_nano - trace_start, span_end(span) - trace_start, total, layout.bar_cols));
    line
}

/// `service name` fitted into `budget` columns. When both don't fit, the service gets at most two fifths so
/// the span name, usually the more telling part, keeps most of the room.
fn span_label(service: &str, name: &str, budget: usize) -> String {
    if service.is_empty() {
        return fit(name, budget);
    }
    let service = clean(service);
    let name = clean(name);
    if service.width() + 1 + name.width() <= budget {
        return format!("{service} {name}");
    }
    let service_cap = (budget * 2 / 5).max(1);
    let service = if service.width() > service_cap { fit(&service, service_cap) } else { service };
    let rest = budget.saturating_sub(service.width() + 1);
    if rest == 0 {
        return fit(&service, budget);
    }
    format!("{service} {}", fit(&name, rest))
}

/// Builds the depth-first row order: roots (including orphans, self-parented spans and one member of
/// each parent cycle) by start time, children by start time under their parent; ties by name, then span ID.
fn tree_rows(spans: &[WaterfallSpan], max_indent_levels: usize) -> Vec<Row> {
    let n = spans.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| sort_key_cmp(spans, a, b));
    let mut rank = vec![0usize; n];
    for (position, &index) in order.iter().enumerate() {
        rank[index] = position;
    }

    // Duplicated IDs: children attach to the earliest-sorted span carrying the ID.
    let mut by_id: HashMap<[u8; 8], usize> = HashMap::with_capacity(n);
    for &index in &order {
        by_id.entry(spans[index].span_id).or_insert(index);
    }
    let mut parent: Vec<Option<usize>> = (0..n)
        .map(|index| spans[index].parent_span_id.and_then(|p| by_id.get(&p).copied()).filter(|&p| p != index))
        .collect();

    break_cycles(&mut parent, &order, &rank);

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for &index in &order {
        match parent[index] {
            Some(p) => children[p].push(index),
            None => roots.push(index),
        }
    }

    // Iterative DFS: a chain of a million spans must not overflow the stack.
    let mut rows = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut lasts: Vec<bool> = Vec::new();
    let mut stack: Vec<(usize, usize, bool)> = roots.iter().rev().map(|&r| (r, 0, true)).collect();
    while let Some((index, depth, is_last)) = stack.pop() {
        if std::mem::replace(&mut seen[index], true) {
            continue;
        }
        lasts.truncate(depth.saturating_sub(1));
        if depth > 0 {
            lasts.push(is_last);
        }
        rows.push(Row { index, prefix: tree_prefix(&lasts, max_indent_levels) });
        let kids = &children[index];
        for (k, &child) in kids.iter().enumerate().rev() {
            stack.push((child, depth + 1, k + 1 == kids.len()));
        }
    }
    // Unreachable after cycle breaking, but a span must never silently vanish from the output.
    for &index in &order {
        if !seen[index] {
            rows.push(Row { index, prefix: String::new() });
        }
    }
    rows
}

fn sort_key_cmp(spans: &[WaterfallSpan], a: usize, b: usize) -> Ordering {
    let (sa, sb) = (&spans[a], &spans[b]);
    sa.start_unix_nano
        .cmp(&sb.start_unix_nano)
        .then_with(|| sa.name.cmp(&sb.name))
        .then_with(|| sa.span_id.cmp(&sb.span_id))
        .then_with(|| a.cmp(&b))
}

/// Each span has at most one parent, so the parent links form a functional graph: every cycle is found by
/// walking up from each span once. The cycle's earliest-sorted member becomes a root, which keeps every
/// span reachable from some root exactly once.
fn break_cycles(parent: &mut [Option<usize>], order: &[usize], rank: &[usize]) {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parent.len()];
    let mut path = Vec::new();
    for &start in order {
        path.clear();
        let mut current = Some(start);
        while let Some(node) = current {
            match state[node] {
                NEW => {
                    state[node] = ON_PATH;
                    path.push(node);
                    current = parent[node];
                }
                ON_PATH => {
                    let from = path.iter().position(|&p| p == node).unwrap_or(0);
                    if let Some(cut) = path[from..].iter().copied().min_by_key(|&m| rank[m]) {
                        parent[cut] = None;
                    }
                    break;
                }
                _ => break,
            }
        }
        for &node in &path {
            state[node] = DONE;
        }
    }
}

/// `lasts[k]` says whether the ancestor at level k+1 (the span itself for the last entry) is the last
/// child of its parent. Levels beyond `max_levels` are summarised as `[depth]` so the name keeps its room.
fn tree_prefix(lasts: &[bool], max_levels: usize) -> String {
    let depth = lasts.len();
    let mut prefix = String::new();
    let shown = if depth > max_levels {
        prefix.push_str(&format!("[{depth}]"));
        &lasts[depth - max_levels.saturating_sub(1).min(depth)..]
    } else {
        lasts
    };
    for (i, &last) in shown.iter().enumerate() {
        let own_level = i + 1 == shown.len();
        prefix.push_str(match (own_level, last) {
            (true, true) => "└─ ",
            (true, false) => "├─ ",
            (false, true) => "   ",
            (false, false) => "│  ",
        });
    }
    prefix
}

/// The span's extent within `[0, total]` drawn over `cells` cells with 1/8-cell precision at the end and
/// 1/2-cell precision at the start. Any span gets at least a sliver, so instant spans stay visible.
fn bar(offset_start: u64, offset_end: u64, total: u64, cells: usize) -> String {
    let eighths = (cells as u128) * 8;
    let (mut start8, mut end8) = if total == 0 {
        (0, 1)
    } else {
        let total = u128::from(total);
        let s = u128::from(offset_start) * eighths / total;
        let e = (u128::from(offset_end) * eighths).div_ceil(total);
        (s, e)
    };
    start8 = start8.min(eighths.saturating_sub(1));
    end8 = end8.clamp(start8 + 1, eighths);

    let mut out = String::with_capacity(cells * 3);
    for cell in 0..cells as u128 {
        let cell_lo = cell * 8;
        let lo = start8.max(cell_lo);
        let hi = end8.min(cell_lo + 8);
        if lo >= hi {
            out.push(BAR_BACKGROUND);
            continue;
        }
        let (lo, hi) = ((lo - cell_lo) as usize, (hi - cell_lo) as usize);
        let glyph = match (lo, hi) {
            (0, hi) => LEFT_EIGHTHS[hi],
            (lo, 8) if lo < 3 => '█',
            (lo, 8) if lo < 6 => '▐',
            (_, 8) => '▕',
            // Span inside a single cell, not touching its left edge.
            (lo, hi) if lo < 4 => LEFT_EIGHTHS[hi],
            (lo, hi) if hi - lo >= 3 => '▐',
            _ => '▕',
        };
        out.push(glyph);
    }
    out
}

/// A human duration of at most 7 columns: `850ns`, `3.4µs`, `12µs`, `3.4ms`, `120ms`, `1.25s`, `12.3s`,
/// `2m03s`, `1h02m`, `3d04h`, `213503d`.
fn format_duration(ns: u64) -> String {
    fn div_round(n: u64, d: u64) -> u64 {
        n / d + u64::from((n % d) * 2 >= d)
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    for (unit, suffix) in [(1_000u64, "µs"), (1_000_000, "ms")] {
        let tenths = div_round(ns, unit / 10);
        if tenths < 100 {
            return format!("{}.{}{suffix}", tenths / 10, tenths % 10);
        }
        let whole = div_round(ns, unit);
        if whole < 1_000 {
            return format!("{whole}{suffix}");
        }
    }
    const SEC: u64 = 1_000_000_000;
    let hundredths = div_round(ns, SEC / 100);
    if hundredths < 1_000 {
        return format!("{}.{:02}s", hundredths / 100, hundredths % 100);
    }
    let tenths = div_round(ns, SEC / 10);
    if tenths < 600 {
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let secs = div_round(ns, SEC);
    if secs < 3_600 {
        return format!("{}m{:02}s", secs / 60, secs % 60);
    }
    let mins = div_round(ns, 60 * SEC);
    if mins < 24 * 60 {
        return format!("{}h{:02}m", mins / 60, mins % 60);
    }
    let hours = div_round(ns, 3_600 * SEC);
    if hours < 100 * 24 {
        return format!("{}d{:02}h", hours / 24, hours % 24);
    }
    format!("{}d", div_round(ns, 86_400 * SEC))
}

/// Makes untrusted text safe to print on one terminal line: whitespace controls become spaces, other
/// control and bidi-override characters (escape sequences, Trojan-source tricks) become U+FFFD.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '\u{fffd}',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// `text` cleaned and, if wider than `max` columns, cut to fit with a trailing '…'.
fn fit(text: &str, max: usize) -> String {
    let text = clean(text);
    if text.width() <= max {
        return text;
    }
    if max == 0 {
        return String::new();
    }
    let budget = max - 1;
    let mut out = String::new();
    let mut cols = 0;
    // Bound the chars kept so a run of zero-width characters can't make the fix-up below quadratic in the input.
    for c in text.chars().take(max * 8 + 64) {
        let w = c.width().unwrap_or(0);
        if cols + w > budget {
            break;
        }
        cols += w;
        out.push(c);
    }
    // Some sequences (emoji presentation selectors) are wider than the sum of their chars.
    while out.width() > budget {
        out.pop();
    }
    out.push('…');
    while out.width() > max && out.chars().count() > 1 {
        let last = out.pop();
        out.pop();
        if let Some(last) = last {
            out.push(last);
        }
    }
    out
}

fn pad_to(line: &mut String, cols: usize) {
    let w = line.width();
    line.extend(std::iter::repeat_n(' ', cols.saturating_sub(w)));
}

/// Appends one finished line; the final `fit` guarantees the width promise even if a column computation
/// above were off, and trailing spaces are dropped so copies of the output stay clean.
fn push_line(out: &mut String, line: &str, width: usize) {
    let line = fit(line, width);
    out.push_str(line.trim_end_matches(' '));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 8] {
        n.to_be_bytes()
    }

    fn span(n: u64, parent: Option<u64>, service: &str, name: &str, start: u64, end: u64) -> WaterfallSpan {
        WaterfallSpan {
            span_id: id(n),
            parent_span_id: parent.map(id),
            service: service.to_string(),
            name: name.to_string(),
            start_unix_nano: start,
            end_unix_nano: end,
            is_error: false,
            status_message: String::new(),
        }
    }

    fn failed(mut s: WaterfallSpan, message: &str) -> WaterfallSpan {
        s.is_error = true;
        s.status_message = message.to_string();
        s
    }

    /// The span lines of a rendering: after the header and the axis line (the first one indented), up to the
    /// blank line before the footer.
    fn span_lines(out: &str) -> Vec<&str> {
        out.lines().skip_while(|l| !l.starts_with(' ')).skip(1).take_while(|l| !l.is_empty()).collect()
    }

    /// The tree-and-name column of a span line, trailing padding removed.
    fn left_part(line: &str, width: usize) -> String {
        let cols = Layout::new(width).name_cols;
        let mut out = String::new();
        let mut used = 0;
        for c in line.chars() {
            used += c.width().unwrap_or(0);
            if used > cols {
                break;
            }
            out.push(c);
        }
        out.trim_end().to_string()
    }

    /// The bar cells of a span line.
    fn bar_part(line: &str, width: usize) -> Vec<char> {
        let layout = Layout::new(width);
        let mut cells: Vec<char> = line.chars().skip(layout.bar_start_col()).collect();
        cells.resize(layout.bar_cols, ' ');
        cells
    }

    fn small_trace() -> Vec<WaterfallSpan> {
        // Deliberately out of order: the renderer must sort.
        vec![
            span(4, Some(2), "db", "SELECT users", 20_000_000, 30_000_000),
            span(3, Some(1), "api", "render", 60_000_000, 90_000_000),
            span(1, None, "frontend", "GET /users", 0, 100_000_000),
            span(2, Some(1), "api", "load users", 10_000_000, 50_000_000),
        ]
    }

    fn assert_all_lines_fit(out: &str, width: usize) {
        assert!(out.ends_with('\n'), "output must end with a newline");
        for line in out.split_terminator('\n') {
            assert!(line.width() <= width.max(MIN_WIDTH), "line wider than {width}: {line:?} ({})", line.width());
            assert!(!line.chars().any(|c| c.is_control()), "control char in {line:?}");
        }
    }

    #[test]
    fn tree_order_and_prefixes() {
        let out = render("abc", &small_trace(), 80);
        let lefts: Vec<String> = span_lines(&out).iter().map(|l| left_part(l, 80)).collect();
        assert_eq!(
            lefts,
            ["frontend GET /users", "├─ api load users", "│  └─ db SELECT users", "└─ api render"],
            "{out}"
        );
    }

    #[test]
    fn siblings_with_equal_start_sort_by_name_then_id() {
        let spans = vec![
            span(1, None, "", "root", 0, 10),
            span(9, Some(1), "", "b", 5, 6),
            span(8, Some(1), "", "a", 5, 6),
            span(3, Some(1), "", "a", 5, 6),
            span(2, Some(1), "", "z", 1, 2),
        ];
        let rows = tree_rows(&spans, 10);
        let order: Vec<u8> = rows.iter().map(|r| spans[r.index].span_id[7]).collect();
        assert_eq!(order, [1, 2, 3, 8, 9]);
    }

    #[test]
    fn header_counts_spans_services_duration_and_errors() {
        let mut spans = small_trace();
        spans[0] = failed(spans[0].clone(), "timeout");
        let out = render("0af7651916cd43dd8448eb211c80319c", &spans, 80);
        let header = out.lines().next().unwrap_or_default();
        assert_eq!(header, "Trace 0af7651916cd43dd8448eb211c80319c  4 spans, 3 services, 100ms, 1 error");
        // Too narrow for ID and counts on one line: the counts move to their own line rather than being cut.
        let narrow = render("0af7651916cd43dd8448eb211c80319c", &spans, 40);
        let head: Vec<&str> = narrow.lines().take(2).collect();
        assert_eq!(head, ["Trace 0af7651916cd43dd8448eb211c80319c", "4 spans, 3 services, 100ms, 1 error"]);
        let long_id = render(&"f".repeat(100), &spans, 40);
        assert_eq!(long_id.lines().next().unwrap_or_default(), format!("Trace {}…", "f".repeat(33)));
        let ok = render("x", &small_trace(), 80);
        assert!(!ok.lines().next().unwrap_or_default().contains("error"), "{ok}");
    }

    #[test]
    fn axis_line_labels_span_the_bar_column() {
        let out = render("abc", &small_trace(), 80);
        let axis = out.lines().nth(1).unwrap_or_default();
        let layout = Layout::new(80);
        assert_eq!(axis.width(), layout.width);
        assert!(axis.ends_with(" 100ms"), "{axis:?}");
        let zero_col = axis.chars().position(|c| c == '0');
        assert_eq!(zero_col, Some(layout.bar_start_col()), "{axis:?}");
    }

    #[test]
    fn orphans_are_roots() {
        let spans = vec![
            span(1, None, "svc", "root", 0, 100),
            span(2, Some(77), "svc", "orphan", 50, 60),
            span(3, Some(2), "svc", "orphan child", 55, 58),
        ];
        let out = render("t", &spans, 80);
        let lefts: Vec<String> = span_lines(&out).iter().map(|l| left_part(l, 80)).collect();
        assert_eq!(lefts, ["svc root", "svc orphan", "└─ svc orphan child"], "{out}");
    }

    #[test]
    fn cycles_self_parents_and_duplicates_show_every_span_once() {
        let spans = vec![
            span(1, Some(2), "", "cycle-a", 10, 20),
            span(2, Some(1), "", "cycle-b", 5, 20),
            span(3, Some(3), "", "self-parent", 0, 1),
            span(4, Some(6), "", "tri-a", 30, 40),
            span(5, Some(4), "", "tri-b", 31, 40),
            span(6, Some(5), "", "tri-c", 32, 40),
            span(7, Some(5), "", "hangs-off-tri", 33, 34),
            span(8, None, "", "dup-first", 1, 2),
            span(8, Some(8), "", "dup-second", 3, 4),
        ];
        let out = render("t", &spans, 80);
        let lines = span_lines(&out);
        assert_eq!(lines.len(), spans.len(), "{out}");
        for s in &spans {
            let hits = lines
                .iter()
                .filter(|l| left_part(l, 80).ends_with(&format!(" {}", s.name)) || left_part(l, 80) == s.name)
                .count();
            assert_eq!(hits, 1, "{} should appear once in:\n{out}", s.name);
        }
        // The earliest member of a cycle becomes its root; the other hangs under it.
        let lefts: Vec<String> = lines.iter().map(|l| left_part(l, 80)).collect();
        let b = lefts.iter().position(|l| l == "cycle-b");
        assert!(b.is_some(), "{out}");
        assert_eq!(lefts.get(b.unwrap_or(0) + 1).map(String::as_str), Some("└─ cycle-a"), "{out}");
        assert!(lefts.contains(&"self-parent".to_string()), "{out}");
    }

    #[test]
    fn deep_chain_neither_overflows_nor_loses_the_name() {
        let depth = 20_000u64;
        let spans: Vec<WaterfallSpan> =
            (0..depth).map(|i| span(i + 1, (i > 0).then_some(i), "s", &format!("n{i}"), i, depth * 2 - i)).collect();
        let out = render("deep", &spans, 80);
        let lines = span_lines(&out);
        assert_eq!(lines.len(), depth as usize);
        assert_all_lines_fit(&out, 80);
        let deepest = left_part(lines[lines.len() - 1], 80);
        assert!(deepest.starts_with(&format!("[{}]", depth - 1)), "{deepest}");
        assert!(deepest.ends_with(&format!("s n{}", depth - 1)), "{deepest}");
        // Indentation stops growing: the name column always keeps room for text.
        let layout = Layout::new(80);
        assert!(3 * layout.max_indent_levels + 8 <= layout.name_cols);
    }

    #[test]
    fn error_mark_and_footer() {
        let mut spans = small_trace();
        spans[0] = failed(spans[0].clone(), "deadline exceeded\nafter 10ms");
        spans[1] = failed(spans[1].clone(), ""); // error without a message: marked, but no footer line
        let out = render("t", &spans, 80);
        let layout = Layout::new(80);
        let mark_col = layout.name_cols + 1 + DURATION_COLS + 1;
        let marks: Vec<(String, char)> =
            span_lines(&out).iter().map(|l| (left_part(l, 80), l.chars().nth(mark_col).unwrap_or(' '))).collect();
        assert_eq!(
            marks,
            [
                ("frontend GET /users".to_string(), ' '),
                ("├─ api load users".to_string(), ' '),
                ("│  └─ db SELECT users".to_string(), ERROR_MARK),
                ("└─ api render".to_string(), ERROR_MARK),
            ],
            "{out}"
        );
        let footer: Vec<&str> = out.lines().skip_while(|l| !l.is_empty()).skip(1).collect();
        assert_eq!(footer, ["✗ db SELECT users: deadline exceeded after 10ms"], "{out}");
    }

    #[test]
    fn footer_is_truncated_to_width() {
        let spans = vec![failed(span(1, None, "svc", "op", 0, 10), &"very long reason ".repeat(20))];
        let out = render("t", &spans, 40);
        let last = out.lines().last().unwrap_or_default();
        assert!(last.starts_with("✗ svc op: very long reason"), "{out}");
        assert!(last.ends_with('…') && last.width() == 40, "{last:?}");
    }

    #[test]
    fn bar_position_follows_time() {
        let spans = vec![
            span(1, None, "", "root", 1_000, 2_000),
            span(2, Some(1), "", "second-half", 1_500, 2_000),
            span(3, Some(1), "", "first-half", 1_000, 1_500),
            span(4, Some(1), "", "instant", 1_750, 1_750),
        ];
        for width in [40, 80, 120] {
            let out = render("t", &spans, width);
            let half = Layout::new(width).bar_cols / 2;
            let bars: HashMap<String, Vec<char>> =
                span_lines(&out).iter().map(|l| (left_part(l, width), bar_part(l, width))).collect();
            let drawn = |c: &char| *c != BAR_BACKGROUND && *c != ' ';

            let root = &bars["root"];
            assert!(root.iter().all(|c| *c == '█'), "root covers the whole trace: {root:?}");

            let second = &bars["├─ second-half"];
            let first_drawn = second.iter().position(drawn);
            assert_eq!(first_drawn, Some(half), "{second:?}");
            assert!(second[half..].iter().all(|c| *c == '█'), "{second:?}");

            let first = &bars["├─ first-half"];
            assert!(first[..half].iter().all(|c| *c == '█') && !first[half..].iter().any(drawn), "{first:?}");

            let instant = &bars["└─ instant"];
            assert_eq!(instant.iter().filter(|c| drawn(c)).count(), 1, "instant spans get one cell: {instant:?}");
            let at = instant.iter().position(drawn).unwrap_or(0);
            assert!(at >= half + half / 2 - 1 && at <= half + half / 2, "{instant:?}");
        }
    }

    #[test]
    fn bar_has_sub_cell_precision() {
        // 10 cells = 80 eighths over 80ns: each ns is one eighth.
        assert_eq!(bar(0, 11, 80, 10), "█▍········");
        assert_eq!(bar(0, 12, 80, 10), "█▌········");
        assert_eq!(bar(4, 16, 80, 10), "▐█········");
        assert_eq!(bar(0, 0, 80, 10), "▏·········");
        assert_eq!(bar(80, 80, 80, 10), "·········▕");
        assert_eq!(bar(0, 0, 0, 10), "▏·········");
        assert_eq!(bar(0, u64::MAX, u64::MAX, 10), "██████████");
    }

    #[test]
    fn every_line_fits_for_hostile_names() {
        let long = "a".repeat(300);
        let names = [
            long.as_str(),
            "数据库查询数据库查询数据库查询数据库查询数据库查询数据库查询",
            "🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥🚀🔥",
            "❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}❤\u{fe0f}",
            "👨\u{200d}👩\u{200d}👧\u{200d}👦 family 👨\u{200d}👩\u{200d}👧\u{200d}👦👨\u{200d}👩\u{200d}👧\u{200d}👦👨\u{200d}👩\u{200d}👧\u{200d}👦",
            "e\u{301}\u{301}\u{301} combining and \u{200b}zero\u{200b}width",
            "tab\tnew\nline\x1b[31mred\x1b[0m\u{202e}rtl",
            "",
            "x",
            "ｗｉｄｅ ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ ｇｏ ｈｅｒｅ ａｎｄ ｈｅｒｅ",
        ];
        let services = ["", "checkout", "数据库", &"svc".repeat(40), "🚀🚀🚀"];
        let times = [(0, 0), (0, u64::MAX), (u64::MAX, 0), (u64::MAX, u64::MAX), (5, 3), (1_000, 2_000_000_000)];
        for case in 0..names.len() * 3 {
            let mut spans = Vec::new();
            for i in 0..12u64 {
                let k = case + i as usize;
                let (start, end) = times[k % times.len()];
                let parent = if i == 0 { None } else { Some((k as u64 * 7) % i + 1) };
                let s = span(i + 1, parent, services[k % services.len()], names[k % names.len()], start, end);
                spans.push(if k.is_multiple_of(4) { failed(s, names[(k + 1) % names.len()]) } else { s });
            }
            let trace_id = if case.is_multiple_of(2) {
                "0af7651916cd43dd8448eb211c80319c".to_string()
            } else {
                names[case % names.len()].repeat(3)
            };
            for width in [0, 39, 40, 41, 57, 80, 99, 120, 200] {
                let out = render(&trace_id, &spans, width);
                assert_all_lines_fit(&out, width);
                assert_eq!(span_lines(&out).len(), spans.len(), "case {case} width {width}:\n{out}");
            }
        }
    }

    #[test]
    fn huge_width_is_capped() {
        let out = render("t", &small_trace(), usize::MAX);
        assert_all_lines_fit(&out, MAX_WIDTH);
    }

    #[test]
    fn durations() {
        let cases: &[(u64, &str)] = &[
            (0, "0ns"),
            (850, "850ns"),
            (999, "999ns"),
            (1_000, "1.0µs"),
            (3_449, "3.4µs"),
            (9_949, "9.9µs"),
            (9_950, "10µs"),
            (12_000, "12µs"),
            (999_499, "999µs"),
            (999_500, "1.0ms"),
            (3_400_000, "3.4ms"),
            (120_000_000, "120ms"),
            (999_600_000, "1.00s"),
            (1_250_000_000, "1.25s"),
            (9_996_000_000, "10.0s"),
            (12_340_000_000, "12.3s"),
            (59_960_000_000, "1m00s"),
            (123_000_000_000, "2m03s"),
            (3_599_000_000_000, "59m59s"),
            (3_720_000_000_000, "1h02m"),
            (86_399_000_000_000, "1d00h"),
            (273_600_000_000_000, "3d04h"),
            (u64::MAX, "213504d"),
        ];
        for &(ns, want) in cases {
            let got = format_duration(ns);
            assert_eq!(got, want, "format_duration({ns})");
            assert!(got.width() <= DURATION_COLS, "{got}");
        }
        for shift in 0..64 {
            for ns in [1u64 << shift, (1u64 << shift).wrapping_sub(1), (1u64 << shift) + (1u64 << shift) / 2] {
                assert!(format_duration(ns).width() <= DURATION_COLS, "{ns}: {}", format_duration(ns));
            }
        }
    }

    #[test]
    fn empty_trace() {
        let out = render("deadbeef", &[], 80);
        assert_eq!(out, "Trace deadbeef  0 spans, 0 services, 0ns\n(no spans)\n");
        assert_all_lines_fit(&render("", &[], 0), 40);
    }

    #[test]
    fn zero_length_trace() {
        let spans = vec![span(1, None, "a", "root", 42, 42), span(2, Some(1), "a", "child", 42, 10)];
        let out = render("t", &spans, 80);
        assert!(out.starts_with("Trace t  2 spans, 1 service, 0ns\n"), "{out}");
        for line in span_lines(&out) {
            assert_eq!(bar_part(line, 80).iter().filter(|c| **c != BAR_BACKGROUND).count(), 1, "{line}");
            assert!(line.contains(" 0ns "), "{line}");
        }
    }

    #[test]
    fn long_labels_keep_part_of_the_name() {
        // The service gets at most two fifths of the room, so the name survives a long service name.
        assert_eq!(span_label(&"service".repeat(10), "the-operation", 30), "serviceserv… the-operation");
        let label = span_label(&"service".repeat(10), &"operation".repeat(10), 30);
        assert_eq!(label, "serviceserv… operationoperati…");
        assert_eq!(label.width(), 30);
        assert_eq!(span_label("svc", "op", 30), "svc op");
        assert_eq!(span_label("", &"n".repeat(40), 10), "nnnnnnnnn…");
    }

    #[test]
    fn fit_measures_display_columns() {
        assert_eq!(fit("数据库查询", 5), "数据…");
        assert_eq!(fit("数据库查询", 10), "数据库查询");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("a\x1bb", 10), "a\u{fffd}b");
        let hearts = "❤\u{fe0f}".repeat(10);
        assert!(fit(&hearts, 7).width() <= 7);
    }
}
