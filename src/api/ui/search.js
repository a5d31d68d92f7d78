// The search page: a TraceQL box with autocomplete, a builder that writes TraceQL into it, a time range,
// and the traces found as a scatter of duration over time and a table. The URL holds the query, the range
// and the limit, so a shared link runs the same search; the TraceQL text is the whole truth of a search.

import { ApiError, getJSON, identity } from './api.js';
import { h, notice } from './dom.js';
import { bytes, count, duration, serviceColor, timestamp } from './format.js';
import { scatter } from './scatter.js';
import * as traceql from './traceql.js';

const RANGES = [
  ['15m', 'Last 15 minutes', 15 * 60], ['1h', 'Last 1 hour', 3600], ['3h', 'Last 3 hours', 3 * 3600],
  ['6h', 'Last 6 hours', 6 * 3600], ['12h', 'Last 12 hours', 12 * 3600], ['24h', 'Last 24 hours', 86400],
  ['2d', 'Last 2 days', 2 * 86400], ['7d', 'Last 7 days', 7 * 86400],
];
const DEFAULT_RANGE = '1h';
const LIMITS = [20, 50, 100, 500];
const DEFAULT_LIMIT = 20;
// Matched spans listed per trace; `matched` still counts them all.
const SPANS_PER_SPANSET = 3;
const DURATION_EXAMPLES = ['1ms', '10ms', '100ms', '250ms', '500ms', '1s', '5s', '10s'];
const BUILDER_HIDDEN_KEY = 'spanlake.search.builderHidden';
const DURATION_FIELDS = new Set(['duration', 'traceDuration', 'span:duration', 'trace:duration']);

export function mount(root, ctx) {
  const page = { ...readUrl(ctx.query), sort: { key: 'start', descending: true }, controller: null };
  const source = tagSource(() => page.time);
  const editor = queryEditor({ source, onRun: () => run(editor.value) });
  editor.value = page.q || '';
  const build = builder({ source, onQuery: (text) => { editor.value = text; }, onRun: () => run(editor.value) });
  const picker = timePicker(page.time, (time) => { page.time = time; build.refresh(); run(editor.value); });
  const limit = h('select', { class: 'limit', 'aria-label': 'Traces to show', onchange: () => { page.limit = Number(limit.value); run(editor.value); } },
    [...new Set([...LIMITS, page.limit])].sort((a, b) => a - b).map((n) => new Option(`${n} traces`, String(n), false, n === page.limit)));
  const builderToggle = h('button', {
    type: 'button', class: 'builder-toggle', title: 'Show or hide the query builder',
    onclick: () => showBuilder(build.element.hidden),
  }, 'Builder');
  // Someone who writes TraceQL by hand hides the builder once, not on every visit.
  const showBuilder = (shown) => {
    build.element.hidden = !shown;
    builderToggle.setAttribute('aria-pressed', String(shown));
    localStorage.setItem(BUILDER_HIDDEN_KEY, shown ? '' : 'yes');
  };
  showBuilder(!localStorage.getItem(BUILDER_HIDDEN_KEY));
  const status = h('span', { class: 'search-status dim', role: 'status' });
  const message = h('div', { class: 'search-message' });
  const results = h('div', { class: 'search-results' });

  root.append(h('div', { class: 'page search-page' },
    build.element,
    h('div', { class: 'query-row' },
      editor.element,
      h('button', { type: 'button', class: 'primary run', title: 'Run (Enter or Ctrl+Enter)', onclick: () => run(editor.value) }, 'Run query'),
      builderToggle),
    h('div', { class: 'toolbar search-options' }, picker, limit,
      h('span', { class: 'dim hint' }, 'Enter runs · Shift+Enter new line · Ctrl+Space suggests'),
      h('span', { class: 'grow' }), status),
    message,
    results));

  /**
   * Runs `text` over the chosen window. `write` records it in the URL (not for the search a page opens
   * with: that URL is already right, or it is the default and Back should not return to it); `recent`
   * marks the default search of recent traces.
   */
  async function run(text, { write = true, recent = false } = {}) {
    page.controller?.abort();
    const controller = new AbortController();
    page.controller = controller;
    const query = text.trim() || '{}';
    const bounds = windowOf(page.time);
    if (write) ctx.replaceQuery({ q: query, ...urlTime(page.time), limit: page.limit });
    results.classList.add('loading');
    status.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Searching…');
    message.replaceChildren();
    const began = performance.now();
    try {
      const answer = await getJSON('/api/search', {
        q: query, start: bounds.start, end: bounds.end, limit: page.limit, spss: SPANS_PER_SPANSET,
      }, controller.signal);
      if (page.controller !== controller) return;
      const traces = (answer.traces || []).map(readTrace);
      page.traces = traces;
      status.replaceChildren(summary(traces, answer.metrics || {}, page.limit, performance.now() - began, recent));
      showResults();
      if (!traces.length) {
        message.replaceChildren(notice('info', recent
          ? `No traces arrived in the ${describeTime(page.time)}. Send spans over OTLP, then search again.`
          : `No traces match ${query} in the ${describeTime(page.time)}.`));
      }
    } catch (error) {
      if (error.name === 'AbortError' || page.controller !== controller) return;
      page.traces = [];
      results.replaceChildren();
      status.replaceChildren();
      message.replaceChildren(errorNotice(error, query));
    } finally {
      if (page.controller === controller) results.classList.remove('loading');
    }
  }

  function showResults() {
    const traces = sortTraces(page.traces, page.sort);
    const open = (id) => ctx.navigate(`/trace/${id}`);
    if (!traces.length) { results.replaceChildren(); return; }
    results.replaceChildren(
      h('div', { class: 'panel scatter-panel' }, scatter(traces.map(point), { onClick: (p) => open(p.id) })),
      h('div', { class: 'panel table-panel' }, resultsTable(traces, page.sort, (key) => {
        page.sort = { key, descending: page.sort.key === key ? !page.sort.descending : true };
        showResults();
      })),
    );
  }

  // With no query in the URL, show what arrived lately rather than an empty page.
  run(page.q || '{}', { write: false, recent: !page.q });
  if (!page.q) editor.focus();
  return () => { page.controller?.abort(); editor.destroy(); };
}

/** The page's state in the URL: q, the range (`range=1h`, or `start`/`end` unix seconds), the limit. */
function readUrl(query) {
  const start = Number(query.get('start'));
  const end = Number(query.get('end'));
  const range = RANGES.some(([key]) => key === query.get('range')) ? query.get('range') : DEFAULT_RANGE;
  const custom = Number.isInteger(start) && Number.isInteger(end) && start > 0 && end >= start;
  const limit = Number(query.get('limit'));
  return {
    q: query.get('q') || '',
    time: custom ? { start, end } : { range },
    limit: Number.isInteger(limit) && limit > 0 && limit <= 10_000 ? limit : DEFAULT_LIMIT,
  };
}

function urlTime(time) {
  return time.range ? { range: time.range } : { start: time.start, end: time.end };
}

/** The window in unix seconds; a relative range ends now. */
function windowOf(time) {
  if (!time.range) return { start: time.start, end: time.end };
  const end = Math.floor(Date.now() / 1000);
  return { start: end - RANGES.find(([key]) => key === time.range)[2], end };
}

/** "last 1 hour", or "window 2024-05-01 10:00:00 – …", to follow "in the". */
function describeTime(time) {
  if (time.range) return RANGES.find(([key]) => key === time.range)[1].toLowerCase();
  return `window ${timestamp(time.start * 1000).slice(0, 19)} – ${timestamp(time.end * 1000).slice(0, 19)}`;
}

/** Tempo's trace summary as the page uses it: numbers parsed, counts summed over services. */
function readTrace(trace) {
  const stats = Object.values(trace.serviceStats || {});
  const sets = trace.spanSets || (trace.spanSet ? [trace.spanSet] : []);
  const nanos = BigInt(trace.startTimeUnixNano || '0');
  return {
    id: String(trace.traceID || '').padStart(32, '0'),
    rootService: trace.rootServiceName || '',
    rootName: trace.rootTraceName || '',
    startMs: Number(nanos / 1_000_000n),
    durationMs: Number(trace.durationMs || 0),
    spanCount: stats.reduce((sum, s) => sum + (s.spanCount || 0), 0),
    errorCount: stats.reduce((sum, s) => sum + (s.errorCount || 0), 0),
    services: trace.serviceStats || {},
    matched: sets.reduce((sum, set) => sum + (set.matched || 0), 0),
    spans: sets.flatMap((set) => set.spans || []),
  };
}

function point(trace) {
  const errors = trace.errorCount ? ` · ${trace.errorCount} error${trace.errorCount > 1 ? 's' : ''}` : '';
  return {
    id: trace.id, time: trace.startMs, durationMs: trace.durationMs, service: trace.rootService,
    color: serviceColor(trace.rootService),
    error: trace.errorCount > 0,
    title: `${trace.rootService}: ${trace.rootName}\n${timestamp(trace.startMs)} · ${traceDuration(trace)}${errors}\n${trace.id}`,
  };
}

function traceDuration(trace) {
  return trace.durationMs ? duration(trace.durationMs * 1e6) : '<1ms';
}

function summary(traces, metrics, limit, elapsedMs, recent) {
  const parts = [`${count(traces.length)} trace${traces.length === 1 ? '' : 's'}`];
  if (recent) parts[0] = `Recent traces: ${parts[0]}`;
  if (traces.length >= limit) parts.push('limit reached');
  if (metrics.inspectedTraces) parts.push(`${count(metrics.inspectedTraces)} inspected`);
  if (metrics.inspectedBytes) parts.push(bytes(metrics.inspectedBytes));
  parts.push(`${Math.round(elapsedMs)} ms`);
  return parts.join(' · ');
}

/** The server's message; a TraceQL error with a position also points at the place in the query. */
function errorNotice(error, query) {
  const text = error instanceof ApiError ? error.message : `search failed: ${error.message}`;
  const box = notice('error', text);
  const at = traceql.errorPosition(text);
  const line = at && query.split('\n')[at.line - 1];
  if (line !== undefined && line !== null) {
    box.append(h('pre', { class: 'error-pointer' }, `${line}\n${' '.repeat(Math.max(0, at.column - 1))}^`));
  }
  return box;
}

const SORTS = {
  start: (t) => t.startMs, duration: (t) => t.durationMs, spans: (t) => t.spanCount, errors: (t) => t.errorCount,
};

/** Newest first by default, as the server sends them; ties keep the server's order. */
function sortTraces(traces, sort) {
  const key = SORTS[sort.key];
  const sign = sort.descending ? -1 : 1;
  return traces.map((t, i) => [t, i]).sort(([a, i], [b, j]) => sign * (key(a) - key(b)) || i - j).map(([t]) => t);
}

function resultsTable(traces, sort, onSort) {
  const header = (label, key, numeric) => {
    if (!key) return h('th', { class: numeric ? 'num' : '' }, label);
    const arrow = sort.key === key ? (sort.descending ? ' ↓' : ' ↑') : '';
    return h('th', { class: `${numeric ? 'num ' : ''}sortable`, 'aria-sort': sort.key === key ? (sort.descending ? 'descending' : 'ascending') : 'none' },
      h('button', { type: 'button', class: 'sort', onclick: () => onSort(key) }, label + arrow));
  };
  return h('table', { class: 'grid results' },
    h('thead', {}, h('tr', {},
      header('Trace ID'), header('Root service'), header('Root span'), header('Start', 'start'),
      header('Duration', 'duration', true), header('Spans', 'spans', true), header('Errors', 'errors', true),
      header('Matched spans'))),
    h('tbody', {}, traces.map(resultRow)));
}

function resultRow(trace) {
  const services = Object.entries(trace.services)
    .map(([name, s]) => `${name}: ${s.spanCount || 0} spans${s.errorCount ? `, ${s.errorCount} errors` : ''}`).join('\n');
  const swatch = h('span', { class: 'swatch' });
  swatch.style.background = serviceColor(trace.rootService);
  return h('tr', { dataset: { traceId: trace.id } },
    h('td', { class: 'trace-id mono' }, h('a', { href: `/trace/${trace.id}`, title: 'Open the trace' }, trace.id)),
    h('td', { class: 'root-service' }, swatch, trace.rootService),
    h('td', { class: 'root-name', title: trace.rootName }, trace.rootName),
    h('td', { class: 'start', title: new Date(trace.startMs).toISOString() }, timestamp(trace.startMs)),
    h('td', { class: 'duration num' }, traceDuration(trace)),
    h('td', { class: 'span-count num', title: services }, count(trace.spanCount)),
    h('td', { class: 'error-count num' }, trace.errorCount ? h('span', { class: 'badge error' }, count(trace.errorCount)) : h('span', { class: 'dim' }, '0')),
    h('td', { class: 'matched' },
      h('span', { class: 'matched-count' }, count(trace.matched)),
      trace.spans.map((span) => h('span', { class: 'matched-span', title: `${span.name} (span ${span.spanID})` },
        h('span', { class: 'name' }, span.name || '(no name)'),
        h('span', { class: 'dim' }, duration(span.durationNanos || 0)))),
      trace.matched > trace.spans.length ? h('span', { class: 'dim more' }, `+${count(trace.matched - trace.spans.length)}`) : null));
}

/** The range select, and two datetime inputs when the range is custom. */
function timePicker(initial, onChange) {
  const select = h('select', { class: 'range', 'aria-label': 'Time range' },
    RANGES.map(([key, label]) => new Option(label, key, false, key === initial.range)),
    new Option('Custom range…', 'custom', false, !initial.range));
  const from = h('input', { type: 'datetime-local', class: 'range-from', step: 1, 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', class: 'range-to', step: 1, 'aria-label': 'To' });
  const custom = h('span', { class: 'custom-range', hidden: Boolean(initial.range) }, from, h('span', { class: 'dim' }, '–'), to);
  const show = (time) => {
    const bounds = windowOf(time);
    from.value = localInput(bounds.start);
    to.value = localInput(bounds.end);
  };
  show(initial);
  let current = initial;
  select.addEventListener('change', () => {
    if (select.value === 'custom') {
      show(current);
      custom.hidden = false;
      current = readCustom() || current;
    } else {
      custom.hidden = true;
      current = { range: select.value };
    }
    onChange(current);
  });
  const readCustom = () => {
    const start = Math.floor(new Date(from.value).getTime() / 1000);
    const end = Math.floor(new Date(to.value).getTime() / 1000);
    const valid = Number.isFinite(start) && Number.isFinite(end) && end >= start;
    from.classList.toggle('invalid', !valid);
    to.classList.toggle('invalid', !valid);
    return valid ? { start, end } : null;
  };
  for (const input of [from, to]) {
    input.addEventListener('change', () => {
      const time = readCustom();
      if (time) { current = time; onChange(time); }
    });
  }
  return h('span', { class: 'time-picker' }, select, custom);
}

/** Unix seconds as a datetime-local value in the browser's zone. */
function localInput(seconds) {
  const date = new Date(seconds * 1000);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
}

// Tag names and values per tenant and window, shared by every mount: the lists change slowly, and the
// autocomplete asks for the same ones on every keystroke. A relative window is cached for a minute.
const tagCache = new Map();
const TAG_CACHE_MS = 60_000;
const TAG_CACHE_ENTRIES = 300;

function cached(key, load) {
  const hit = tagCache.get(key);
  if (hit && Date.now() - hit.at < TAG_CACHE_MS) return hit.promise;
  const promise = load().catch((error) => { tagCache.delete(key); throw error; });
  tagCache.delete(key);
  tagCache.set(key, { at: Date.now(), promise });
  // A Map iterates in insertion order: the first key is the oldest.
  if (tagCache.size > TAG_CACHE_ENTRIES) tagCache.delete(tagCache.keys().next().value);
  return promise;
}

/** The server's tag lists for the page's current window. */
function tagSource(currentTime) {
  const key = () => {
    const time = currentTime();
    return `${identity.tenant}|${time.range || `${time.start}-${time.end}`}`;
  };
  const names = () => cached(`names|${key()}`, async () => {
    const answer = await getJSON('/api/v2/search/tags', windowOf(currentTime()));
    return Object.fromEntries((answer.scopes || []).map((scope) => [scope.name, scope.tags || []]));
  });
  const values = (tag, q = '') => {
    if (DURATION_FIELDS.has(tag)) return Promise.resolve(DURATION_EXAMPLES.map((value) => ({ type: 'duration', value })));
    return cached(`values|${key()}|${tag}|${q}`, async () => {
      const answer = await getJSON(`/api/v2/search/tag/${encodeURIComponent(tag)}/values`, { q, ...windowOf(currentTime()) });
      return answer.tagValues || [];
    });
  };
  /** What the autocomplete needs for a context. */
  const forContext = async (context) => {
    if (context.kind === 'field' || context.kind === 'attribute') return { scopes: await names() };
    if (context.kind === 'value') return { values: await values(context.tag, context.narrowing) };
    return {};
  };
  return { names, values, forContext };
}

/**
 * The TraceQL box: a growing monospace textarea with a suggestion list at the cursor. Enter (or
 * Ctrl/Cmd+Enter) runs, Shift+Enter breaks the line; with the list open the arrows move, Enter or Tab
 * takes, Escape closes. Ctrl+Space asks for suggestions where the cursor is.
 */
function queryEditor({ source, onRun }) {
  const input = h('textarea', {
    class: 'traceql-input', rows: 1, spellcheck: false, autocomplete: 'off', autocapitalize: 'off',
    'aria-label': 'TraceQL query', 'aria-autocomplete': 'list', 'aria-controls': 'traceql-suggestions',
    placeholder: '{ resource.service.name = "checkout" && status = error && duration > 100ms }',
  });
  const list = h('ul', { id: 'traceql-suggestions', class: 'traceql-suggestions', role: 'listbox', hidden: true });
  const mirror = h('div', { class: 'traceql-mirror', 'aria-hidden': 'true' });
  const box = h('div', { class: 'suggest traceql-editor' }, input, mirror, list);
  let items = [];
  let selected = 0;
  let context = null;
  let generation = 0;

  const close = () => {
    generation += 1;
    items = [];
    list.hidden = true;
    input.removeAttribute('aria-activedescendant');
  };

  async function suggest(explicit) {
    const mine = ++generation;
    const cursor = input.selectionStart;
    const found = traceql.completionContext(input.value, cursor);
    // After a finished condition the list only helps when asked for; Enter should run, not add `&&`.
    if (input.selectionEnd !== cursor || found.kind === 'none' || (found.kind === 'combinator' && !explicit)) {
      close();
      return;
    }
    let offered = [];
    try {
      offered = traceql.suggestions(found, await source.forContext(found));
    } catch {
      offered = traceql.suggestions(found, {});
    }
    if (mine !== generation) return;
    context = found;
    items = offered.slice(0, 200);
    selected = 0;
    render();
  }

  function render() {
    if (!items.length) { list.hidden = true; return; }
    list.replaceChildren(...items.map((item, i) => h('li', {
      id: `traceql-suggestion-${i}`, role: 'option', 'aria-selected': String(i === selected),
      dataset: { value: item.label },
      onmousedown: (event) => { event.preventDefault(); accept(i); },
    }, h('span', { class: 'label' }, item.label), h('span', { class: 'kind' }, item.kind || ''))));
    list.hidden = false;
    input.setAttribute('aria-activedescendant', `traceql-suggestion-${selected}`);
    place();
  }

  // The list opens under the character where the replaced text starts, as in a code editor.
  function place() {
    mirror.style.width = `${input.clientWidth}px`;
    mirror.replaceChildren(input.value.slice(0, context.from), h('span', {}, '\u200b'));
    const marker = mirror.lastChild;
    const left = Math.min(marker.offsetLeft, Math.max(0, input.clientWidth - 320));
    list.style.left = `${left}px`;
    list.style.top = `${marker.offsetTop + marker.offsetHeight - input.scrollTop + 4}px`;
    mirror.replaceChildren();
  }

  function move(by) {
    selected = (selected + by + items.length) % items.length;
    for (const [i, li] of [...list.children].entries()) li.setAttribute('aria-selected', String(i === selected));
    list.children[selected]?.scrollIntoView({ block: 'nearest' });
    input.setAttribute('aria-activedescendant', `traceql-suggestion-${selected}`);
  }

  function accept(i) {
    const item = items[i];
    if (!item) return;
    const next = traceql.applySuggestion(input.value, context, item);
    input.value = next.text;
    input.setSelectionRange(next.cursor, next.cursor);
    fit();
    if (item.reopen) suggest(false); else close();
  }

  function fit() {
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + 2}px`;
  }

  input.addEventListener('keydown', (event) => {
    const open = !list.hidden && items.length > 0;
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      close();
      onRun();
    } else if (open && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
      event.preventDefault();
      move(event.key === 'ArrowDown' ? 1 : -1);
    } else if (open && ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab')) {
      event.preventDefault();
      accept(selected);
    } else if (open && event.key === 'Escape') {
      event.preventDefault();
      close();
    } else if (event.key === ' ' && event.ctrlKey) {
      event.preventDefault();
      suggest(true);
    } else if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      onRun();
    }
  });
  input.addEventListener('input', () => { fit(); suggest(false); });
  input.addEventListener('blur', close);
  input.addEventListener('mousedown', close);

  return {
    element: box,
    get value() { return input.value; },
    set value(text) { input.value = text; close(); requestAnimationFrame(fit); },
    focus: () => input.focus(),
    destroy: close,
  };
}

/**
 * The builder: service, span name, status, duration bounds and attribute filters. Every change writes
 * the TraceQL it means into the box (`onQuery`); its button runs that query.
 */
function builder({ source, onQuery, onRun }) {
  const state = { service: '', spanName: '', status: '', minDuration: '', maxDuration: '', filters: [] };
  const service = h('select', { class: 'builder-service', 'aria-label': 'Service' }, new Option('Any service', ''));
  const spanName = h('select', { class: 'builder-name', 'aria-label': 'Span name' }, new Option('Any span name', ''));
  const status = h('select', { class: 'builder-status', 'aria-label': 'Status' },
    [['', 'Any status'], ['error', 'error'], ['ok', 'ok'], ['unset', 'unset']].map(([v, l]) => new Option(l, v)));
  const minDuration = h('input', { class: 'builder-min', placeholder: 'e.g. 100ms', size: 8, 'aria-label': 'Minimum duration', spellcheck: false });
  const maxDuration = h('input', { class: 'builder-max', placeholder: 'e.g. 2s', size: 8, 'aria-label': 'Maximum duration', spellcheck: false });
  const filters = h('div', { class: 'builder-filters' });
  const problem = h('div', { class: 'error-text builder-problem', role: 'alert' });

  const field = (label, ...controls) => h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), ...controls);
  const element = h('div', { class: 'panel builder' },
    h('div', { class: 'builder-row' },
      field('Service', service),
      field('Span name', spanName),
      field('Status', status),
      field('Duration', h('span', { class: 'pair' }, minDuration, h('span', { class: 'dim' }, 'to'), maxDuration)),
      h('button', { type: 'button', class: 'add-filter', onclick: () => addFilter() }, '+ Attribute'),
      h('span', { class: 'grow' }),
      h('button', { type: 'button', class: 'primary run-builder', onclick: () => { if (write()) onRun(); } }, 'Run builder query')),
    filters,
    problem);

  /** Writes the query into the box; false (and says why) when a duration is not one. */
  function write() {
    state.service = service.value;
    state.spanName = spanName.value;
    state.status = status.value;
    const bad = [];
    for (const [input, key, label] of [[minDuration, 'minDuration', 'minimum'], [maxDuration, 'maxDuration', 'maximum']]) {
      const text = input.value.trim();
      const valid = !text || traceql.isDuration(text);
      input.classList.toggle('invalid', !valid);
      state[key] = valid ? text : '';
      if (!valid) bad.push(`The ${label} duration "${text}" is not a duration such as 100ms or 1.5s.`);
    }
    problem.textContent = bad.join(' ');
    onQuery(traceql.builderQuery(state));
    return bad.length === 0;
  }

  function addFilter() {
    const filter = { scope: 'span', name: '', operator: '=', value: '', type: undefined, values: [] };
    state.filters.push(filter);
    const names = h('datalist', { id: uniqueId('builder-names') });
    const values = h('datalist', { id: uniqueId('builder-values') });
    const scope = h('select', { class: 'filter-scope', 'aria-label': 'Attribute scope' },
      [['span', 'span'], ['resource', 'resource'], ['', 'span or resource']].map(([v, l]) => new Option(l, v)));
    const name = h('input', { class: 'filter-name', placeholder: 'attribute, e.g. http.route', spellcheck: false, 'aria-label': 'Attribute name' });
    const operator = h('select', { class: 'filter-operator', 'aria-label': 'Operator' }, traceql.COMPARISONS.map((op) => new Option(op, op)));
    const value = h('input', { class: 'filter-value', placeholder: 'value', spellcheck: false, 'aria-label': 'Value' });
    // `list` is a read-only property of inputs: only the attribute links the suggestions.
    name.setAttribute('list', names.id);
    value.setAttribute('list', values.id);
    const fillNames = () => source.names().then((scopes) => {
      const listed = filter.scope ? scopes[filter.scope] || [] : [...new Set([...(scopes.span || []), ...(scopes.resource || [])])].sort();
      names.replaceChildren(...listed.map((n) => new Option(n)));
    }).catch(() => {});
    const fillValues = () => {
      if (!filter.name) { values.replaceChildren(); return; }
      source.values(`${filter.scope}.${filter.name}`).then((list) => {
        filter.values = list;
        values.replaceChildren(...list.slice(0, 500).map((v) => new Option(v.value)));
        update();
      }).catch(() => {});
    };
    const update = () => {
      Object.assign(filter, { scope: scope.value, name: name.value.trim(), operator: operator.value, value: value.value });
      filter.type = typeOf(filter.values, filter.value);
      write();
    };
    const row = h('div', { class: 'filter-row' }, scope, name, operator, value, names, values,
      h('button', {
        type: 'button', class: 'remove-filter', title: 'Remove this filter', 'aria-label': 'Remove this filter',
        onclick: () => { state.filters.splice(state.filters.indexOf(filter), 1); row.remove(); write(); },
      }, '×'));
    scope.addEventListener('change', () => { update(); fillNames(); fillValues(); });
    name.addEventListener('change', () => { update(); fillValues(); });
    for (const input of [name, value]) input.addEventListener('input', update);
    operator.addEventListener('change', update);
    filters.append(row);
    fillNames();
    name.focus();
  }

  /** Fills the service and span-name lists for the current window (names narrowed by the service). */
  function refresh() {
    source.values('resource.service.name').then((list) => fill(service, list, 'Any service')).catch(() => {});
    const narrow = service.value ? `{resource.service.name = ${traceql.quote(service.value)}}` : '';
    source.values('name', narrow).then((list) => fill(spanName, list, 'Any span name')).catch(() => {});
  }

  service.addEventListener('change', () => { spanName.value = ''; refresh(); write(); });
  for (const select of [spanName, status]) select.addEventListener('change', write);
  for (const input of [minDuration, maxDuration]) input.addEventListener('input', write);
  // Enter in any of the builder's text fields runs it, as in a form.
  element.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target instanceof HTMLInputElement && write()) onRun();
  });
  refresh();
  return { element, refresh };
}

/** Replaces a select's options by `values`, keeping the current choice even if it is no longer listed. */
function fill(select, values, anyLabel) {
  const chosen = select.value;
  const texts = [...new Set(values.map((v) => v.value))];
  if (chosen && !texts.includes(chosen)) texts.unshift(chosen);
  select.replaceChildren(new Option(anyLabel, ''), ...texts.slice(0, 1000).map((v) => new Option(v, v)));
  select.value = chosen;
}

/** A filter value's type: the server's type for that value, else the one type all listed values share. */
function typeOf(values, value) {
  const known = values.find((v) => v.value === value);
  if (known) return known.type;
  const types = new Set(values.map((v) => v.type));
  return types.size === 1 && !types.has('string') ? [...types][0] : undefined;
}

let idCounter = 0;
function uniqueId(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}
