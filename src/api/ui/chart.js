// Charts of query results, drawn as SVG: a line chart over time, columns over time, and horizontal bars
// per category. `planChart` looks at a result's column types and decides which of them make sense, so the
// SQL page can offer exactly those. Every mark carries an SVG <title>, the browser's own tooltip.

import { h } from './dom.js';
import { duration, serviceColors, timestamp } from './format.js';

/** Colours for series that are measures (columns), not names: distinct, readable in both themes. */
const PALETTE = ['#2f6fdb', '#e0823d', '#2f9e6b', '#c4487a', '#8a63d2', '#b59b16', '#1f9bb4', '#d1343a'];

/** At most this many categories get a bar; more would be unreadable, so the largest ones are kept. */
export const MAX_BARS = 25;
/** At most this many lines; a pivot by a column with many values keeps those with the largest totals. */
export const MAX_SERIES = 12;
/** Points per line beyond which the chart draws the first ones only (the table still has every row). */
export const MAX_POINTS = 5000;

// ---------------------------------------------------------------------------------------------------
// Which chart a result supports.

/** The broad kind of an Arrow type as the server names it (`Int64`, `Timestamp(ns, "UTC")`, …). */
export function typeKind(type) {
  const t = String(type || '');
  if (/^(Timestamp|Date)/.test(t)) return 'time';
  if (/^(U?Int\d+|Float\d+|Decimal\d*)/.test(t)) return 'number';
  if (/^(Utf8|LargeUtf8|Utf8View|Boolean)/.test(t) || /^Dictionary\(.*Utf8/.test(t)) return 'text';
  return 'other';
}

/** Milliseconds since the epoch of a timestamp or date as the server writes it; NaN when it is not one. */
export function parseTime(value) {
  if (typeof value !== 'string') return NaN;
  // Date.parse reads at most milliseconds; a value without a zone is UTC, as the engine means it.
  let text = value.replace(/(\.\d{3})\d+/, '$1');
  if (text.includes('T') && !/(Z|[+-]\d\d:?\d\d)$/.test(text)) text += 'Z';
  return Date.parse(text);
}

/** A number from a JSON cell (floats that are not finite arrive as strings); NaN when none. */
export function toNumber(value) {
  if (typeof value === 'number') return value;
  if (value === null || value === undefined || value === '') return NaN;
  return Number(value);
}

/** How values of the column named `name` read best: durations for `…_ns`/`duration…`, else compact. */
export function valueFormatter(name) {
  return /(_ns$|^duration|duration)/i.test(name) ? duration : compact;
}

/** 1234 → 1.23k, 0.5 → 0.5, 12345678 → 12.3M. */
export function compact(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  const abs = Math.abs(n);
  for (const [scale, unit] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (abs >= scale) return `${+(n / scale).toPrecision(3)}${unit}`;
  }
  return abs === 0 || abs >= 0.01 ? `${+n.toPrecision(3)}` : n.toExponential(1);
}

/**
 * The charts a result supports: `{kinds: ['line'|'bar'], preferred, draw(kind, width)}`, or null when it
 * supports none. Line: the first column is a time and some later column a number (one text column among
 * them splits the numbers into one line per value). Bar: a text column and number columns, or the line's
 * data drawn as columns.
 */
export function planChart(columns, rows) {
  if (!columns.length || !rows.length) return null;
  const kinds = columns.map((c) => typeKind(c.type));
  const numbers = kinds.map((k, i) => (k === 'number' ? i : -1)).filter((i) => i >= 0);
  const texts = kinds.map((k, i) => (k === 'text' ? i : -1)).filter((i) => i >= 0);
  if (kinds[0] === 'time' && numbers.length) {
    const data = timeSeries(columns, rows, numbers, texts.length === 1 ? texts[0] : -1);
    if (!data.xs.length) return null;
    return {
      kinds: ['line', 'bar'],
      preferred: columns.length <= MAX_AGGREGATE_COLUMNS ? 'line' : 'table',
      note: data.note,
      draw: (kind, width) => (kind === 'line' ? lineChart(data, { width }) : columnChart(data, { width })),
    };
  }
  // Bars need a column that names each row once (the groups of a GROUP BY). A wide result is a listing
  // more than an aggregate: it offers its chart without choosing it.
  const label = texts.find((i) => new Set(rows.map((row) => row[i])).size === rows.length);
  if (label !== undefined && numbers.length) {
    const data = categories(columns, rows, label, numbers);
    return {
      kinds: ['bar'],
      preferred: columns.length <= MAX_AGGREGATE_COLUMNS ? 'bar' : 'table',
      note: data.note,
      draw: (_kind, width) => barChart(data, { width }),
    };
  }
  return null;
}

/** A result with more columns than this shows its table only until a chart is asked for. */
const MAX_AGGREGATE_COLUMNS = 6;

/** Names of services are coloured as the other pages colour them; other names take the palette's. */
function namesColour(column) {
  return /service/i.test(column.name);
}

/** Time in column 0, numbers in `numbers`; with a `split` column, one series per its values. */
function timeSeries(columns, rows, numbers, split) {
  const notes = [];
  let used = rows;
  if (rows.length > MAX_POINTS * (split >= 0 ? MAX_SERIES : 1)) {
    used = rows.slice(0, MAX_POINTS * (split >= 0 ? MAX_SERIES : 1));
    notes.push(`the chart shows the first ${used.length.toLocaleString('en-US')} rows`);
  }
  const xsSet = new Set();
  for (const row of used) {
    const x = parseTime(row[0]);
    if (Number.isFinite(x)) xsSet.add(x);
  }
  const xs = [...xsSet].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const series = new Map();
  const seriesOf = (key, name, color) => {
    if (!series.has(key)) series.set(key, { name, color, values: new Array(xs.length).fill(null), total: 0 });
    return series.get(key);
  };
  // One measure split by a text column: the lines are its values (services, routes…). Several measures
  // split: each line is "value · measure".
  numbers.forEach((column, n) => {
    for (const row of used) {
      const index = at.get(parseTime(row[0]));
      const value = toNumber(row[column]);
      if (index === undefined || !Number.isFinite(value)) continue;
      let line;
      if (split >= 0) {
        const category = row[split] === null ? 'NULL' : String(row[split]);
        const name = numbers.length > 1 ? `${category} · ${columns[column].name}` : category;
        line = seriesOf(`${category}\u0000${column}`, name, PALETTE[series.size % PALETTE.length]);
        line.category = category;
      } else {
        line = seriesOf(String(column), columns[column].name, PALETTE[n % PALETTE.length]);
      }
      line.values[index] = (line.values[index] ?? 0) + value;
      line.total += Math.abs(value);
    }
  });
  let list = [...series.values()];
  if (list.length > MAX_SERIES) {
    notes.push(`the ${MAX_SERIES} largest of ${list.length} series`);
    list = list.sort((a, b) => b.total - a.total).slice(0, MAX_SERIES);
  }
  // One measure per service: each line in the service's colour, as on the other pages.
  if (split >= 0 && numbers.length === 1 && namesColour(columns[split])) {
    const colors = serviceColors(list.map((s) => s.category));
    for (const line of list) line.color = colors.get(line.category);
  }
  const format = valueFormatter(columns[numbers[0]].name);
  return { xs, series: list, format, stacked: split >= 0 && numbers.length === 1, note: notes.join('; ') };
}

/** Categories from column `label`, one bar series per number column; the largest MAX_BARS kept. */
function categories(columns, rows, label, numbers) {
  let used = rows;
  let note = '';
  if (rows.length > MAX_BARS) {
    const first = numbers[0];
    used = [...rows].sort((a, b) => (toNumber(b[first]) || 0) - (toNumber(a[first]) || 0)).slice(0, MAX_BARS);
    note = `top ${MAX_BARS} of ${rows.length.toLocaleString('en-US')} by ${columns[first].name}`;
  }
  const names = used.map((row) => (row[label] === null ? 'NULL' : String(row[label])));
  const series = numbers.map((column, n) => ({
    name: columns[column].name,
    color: PALETTE[n % PALETTE.length],
    values: used.map((row) => toNumber(row[column])),
  }));
  // One measure per service: each bar in the service's colour, the same as everywhere else.
  const byCategory = series.length === 1 && namesColour(columns[label]);
  return { categories: names, series, byCategory, format: valueFormatter(columns[numbers[0]].name), note };
}

// ---------------------------------------------------------------------------------------------------
// Scales and ticks.

/** About `count` round tick values (1, 2, 5 × 10^n apart) covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0];
  if (min === max) { min -= Math.abs(min) || 1; max += Math.abs(max) || 1; }
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [1, 2, 5, 10, 50, 100, 250, 500, SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND,
  30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
  6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY];

/** Tick times (ms) at round local-clock steps, and how to label them. */
export function timeTicks(min, max, count = 6) {
  const span = Math.max(max - min, 1);
  const step = TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  // Round to the step in local time, so hour ticks fall on the hour the reader sees.
  const offset = new Date(min).getTimezoneOffset() * MINUTE;
  const first = Math.ceil((min - offset) / step) * step + offset;
  const ticks = [];
  for (let t = first; t <= max; t += step) ticks.push(t);
  return { ticks, label: (t) => timeLabel(t, step, span) };
}

function timeLabel(ms, step, span) {
  const text = timestamp(ms); // "YYYY-MM-DD HH:MM:SS.mmm"
  if (step < SECOND) return text.slice(11, 23);
  if (span >= 2 * DAY) return step >= DAY ? text.slice(5, 10) : text.slice(5, 16);
  if (step < MINUTE) return text.slice(11, 19);
  return text.slice(11, 16);
}

/** A linear map from [d0, d1] to [r0, r1]. */
function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

// ---------------------------------------------------------------------------------------------------
// Drawing.

const svg = (tag, attributes, ...children) => h(`svg:${tag}`, attributes, ...children);
const title = (text) => svg('title', {}, text);

/** The legend above a chart with several series (HTML, so it wraps). */
function legend(series) {
  if (series.length < 2) return null;
  return h('div', { class: 'legend chart-legend' }, series.map((s) => {
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = s.color;
    return h('span', { class: 'legend-item', title: s.name }, swatch, s.name);
  }));
}

/** A chart: its legend, the SVG, and `dataset.chart` naming its kind (for tests and styles). */
function figure(kind, series, element, count) {
  element.dataset.chart = kind;
  element.dataset.marks = String(count);
  return h('figure', { class: 'chart-figure', dataset: { chart: kind } }, legend(series), element);
}

/** Value axis ticks covering the data and zero. */
function valueRange(values, stacked) {
  let min = 0;
  let max = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (stacked) max = Math.max(max, 0);
  return niceTicks(min, max === min ? min + 1 : max, 5);
}

function yAxis(ticks, y, left, right, format) {
  return svg('g', { class: 'axis y' }, ticks.map((t) => svg('g', {},
    svg('line', { class: 'grid-line', x1: left, x2: right, y1: y(t), y2: y(t) }),
    svg('text', { x: left - 6, y: y(t), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, format(t)))));
}

function xTimeAxis(xs, x, bottom, top) {
  const { ticks, label } = timeTicks(xs[0], xs[xs.length - 1]);
  return svg('g', { class: 'axis x' },
    svg('line', { x1: x(xs[0]), x2: x(xs[xs.length - 1]), y1: bottom, y2: bottom }),
    ticks.map((t) => svg('g', {},
      svg('line', { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4 }),
      svg('line', { class: 'grid-line', x1: x(t), x2: x(t), y1: top, y2: bottom }),
      svg('text', { x: x(t), y: bottom + 16, 'text-anchor': 'middle' }, label(t)))));
}

/** Left margin wide enough for the value axis' labels. */
function marginFor(labels) {
  return Math.max(36, 12 + 6.5 * Math.max(...labels.map((l) => l.length)));
}

/**
 * A line per series over time. `data`: `{xs: ms[], series: [{name, color, values: (number|null)[]}],
 * format}`. A gap (null) breaks the line; few points also get dots. Hovering anywhere shows every
 * series' value at the nearest time.
 */
export function lineChart(data, { width = 900, height = 240 } = {}) {
  const { xs, series, format = compact } = data;
  const yTicks = valueRange(series.flatMap((s) => s.values));
  const left = marginFor(yTicks.map(format));
  const top = 8;
  const bottom = height - 24;
  const right = width - 12;
  const x = xs.length > 1 ? scale(xs[0], xs[xs.length - 1], left, right) : () => (left + right) / 2;
  const y = scale(yTicks[0], yTicks[yTicks.length - 1], bottom, top);
  const dots = xs.length <= 80;
  const lines = series.map((s) => {
    let path = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      path += `${pen ? 'L' : 'M'}${x(xs[i]).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    return svg('g', { class: 'series', dataset: { series: s.name } },
      svg('path', { d: path, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }),
      dots ? s.values.map((v, i) => (v === null || !Number.isFinite(v) ? null
        : svg('circle', { class: 'point', cx: x(xs[i]), cy: y(v), r: 2.8, fill: s.color },
          title(`${s.name}\n${timestamp(xs[i])}\n${format(v)}`)))) : null);
  });
  // Invisible bands, one per time, whose tooltip lists every series there.
  const bands = xs.length <= 2000 ? xs.map((t, i) => {
    const from = i === 0 ? left : (x(xs[i - 1]) + x(t)) / 2;
    const to = i === xs.length - 1 ? right : (x(t) + x(xs[i + 1])) / 2;
    const lines = series.filter((s) => s.values[i] !== null).map((s) => `${s.name}: ${format(s.values[i])}`);
    return svg('rect', { class: 'hover-band', x: from, y: top, width: Math.max(to - from, 0.5), height: bottom - top },
      title([timestamp(t), ...lines].join('\n')));
  }) : null;
  const element = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' },
    yAxis(yTicks, y, left, right, format), xTimeAxis(xs, x, bottom, top), svg('g', { class: 'bands' }, bands), lines);
  element.style.maxWidth = `${width}px`;
  return figure('line', series, element, xs.length);
}

/**
 * Columns over time: one per time bucket, on a true time axis (a bucket with no rows is a gap), stacked
 * when the series split one measure (spans per service), side by side when they are different measures.
 */
export function columnChart(data, { width = 900, height = 240 } = {}) {
  const { xs, series, format = compact, stacked } = data;
  const totals = xs.map((_, i) => series.reduce((sum, s) => sum + (Number.isFinite(s.values[i]) ? s.values[i] : 0), 0));
  const yTicks = valueRange(stacked ? totals : series.flatMap((s) => s.values), stacked);
  const left = marginFor(yTicks.map(format));
  const top = 8;
  const bottom = height - 24;
  const right = width - 12;
  // The bucket width is the smallest step between times; each column fills most of its bucket.
  let step = Infinity;
  for (let i = 1; i < xs.length; i += 1) step = Math.min(step, xs[i] - xs[i - 1]);
  if (!Number.isFinite(step) || step <= 0) step = MINUTE;
  const end = xs[xs.length - 1] + step;
  const x = scale(xs[0], end, left, right);
  const band = x(xs[0] + step) - x(xs[0]);
  const gap = Math.min(band * 0.2, 6);
  const y = scale(yTicks[0], yTicks[yTicks.length - 1], bottom, top);
  const bars = [];
  xs.forEach((t, i) => {
    let base = 0;
    series.forEach((s, n) => {
      const v = s.values[i];
      if (v === null || !Number.isFinite(v)) return;
      const inner = (band - gap) / (stacked ? 1 : series.length);
      const bx = x(t) + gap / 2 + (stacked ? 0 : n * inner);
      const y0 = stacked ? y(base) : y(0);
      const y1 = stacked ? y(base + v) : y(v);
      base += stacked ? v : 0;
      bars.push(svg('rect', { class: 'bar', x: bx, y: Math.min(y0, y1), width: Math.max(inner, 1), height: Math.max(Math.abs(y0 - y1), 0.5), fill: s.color },
        title(`${series.length > 1 ? `${s.name}\n` : ''}${timestamp(t)}\n${format(v)}`)));
    });
  });
  const element = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' },
    yAxis(yTicks, y, left, right, format), xTimeAxis([xs[0], end], x, bottom, top), bars);
  element.style.maxWidth = `${width}px`;
  return figure('bar', series, element, xs.length);
}

/**
 * Horizontal bars, one row per category (names stay readable however long), a bar per series in it.
 * `data`: `{categories: string[], series: [{name, color, values}], byCategory, format}`.
 */
export function barChart(data, { width = 900 } = {}) {
  const { categories: names, series, byCategory, format = compact } = data;
  const bar = series.length > 1 ? 12 : 18;
  const rowHeight = bar * series.length + 8;
  // About 7 px a character at 12 px; longer names are cut (the tooltip has them whole).
  const fits = Math.min(34, Math.max(...names.map((n) => n.length)));
  const left = 14 + 7 * fits;
  const right = width - 70; // room for the value written after the longest bar
  const top = 4;
  const bottom = top + rowHeight * names.length;
  const height = bottom + 22;
  const ticks = valueRange(series.flatMap((s) => s.values));
  const x = scale(ticks[0], ticks[ticks.length - 1], left, right);
  const colors = byCategory ? serviceColors(names) : null;
  const rows = names.map((name, i) => {
    const y0 = top + i * rowHeight + 4;
    const label = name.length > fits ? `${name.slice(0, fits - 1)}…` : name;
    return svg('g', { class: 'category', dataset: { category: name } },
      svg('text', { x: left - 8, y: y0 + (rowHeight - 8) / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'category-label' }, label, title(name)),
      series.map((s, n) => {
        const v = s.values[i];
        if (!Number.isFinite(v)) return null;
        const x0 = x(Math.min(0, v));
        const x1 = x(Math.max(0, v));
        const by = y0 + n * bar;
        const color = byCategory ? colors.get(name) : s.color;
        return svg('g', {},
          svg('rect', { class: 'bar', x: x0, y: by, width: Math.max(x1 - x0, 1), height: bar - 2, rx: 2, fill: color },
            title(`${name}${series.length > 1 ? ` · ${s.name}` : ''}\n${format(v)}`)),
          svg('text', { x: x1 + 4, y: by + (bar - 2) / 2, 'dominant-baseline': 'middle', class: 'bar-value' }, format(v)));
      }));
  });
  const axis = svg('g', { class: 'axis x' }, ticks.map((t) => svg('g', {},
    svg('line', { class: 'grid-line', x1: x(t), x2: x(t), y1: top, y2: bottom }),
    svg('text', { x: x(t), y: bottom + 15, 'text-anchor': 'middle' }, format(t)))));
  const element = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' }, axis, rows);
  element.style.maxWidth = `${width}px`;
  return figure('bar', byCategory ? [] : series, element, names.length);
}
