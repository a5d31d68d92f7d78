// The SQL console (`/sql`): an editor beside the schema of `spans` and `traces`, results that stream into
// a paged table as they arrive, a chart chosen from the result's column types, and CSV download.
//
// Results are read in the server's `json` format, not `ndjson`: both stream row by row, but only `json`
// carries the column types (which decide how cells look and which chart fits), keeps columns in their
// order whatever their names, and names the columns of an empty result. A small scanner (ResultStream)
// takes each row out of the text as soon as it is complete, so the first page shows while the rest is
// still coming.

import { ApiError, sql as postSql } from './api.js';
import { h, clear, download, notice } from './dom.js';
import { count, duration, timestamp } from './format.js';
import { parseTime, planChart, typeKind, valueFormatter } from './chart.js';

const PAGE_SIZE = 100;
/** Rows the page keeps; a larger answer is cut off here (download CSV for all of it). */
const MAX_ROWS = 100_000;
const HISTORY_KEY = 'spanlake.sqlHistory';
const HISTORY_LENGTH = 20;
const SCHEMA_QUERY = 'SELECT table_name, column_name, data_type FROM information_schema.columns '
  + "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position";

const EXAMPLES = [
  { title: 'Spans per service', query: 'SELECT service_name, count(*) AS spans\nFROM spans\nGROUP BY service_name\nORDER BY spans DESC' },
  {
    title: 'p95 duration by service',
    query: 'SELECT service_name,\n  approx_percentile_cont(duration_ns, 0.95) AS p95_duration_ns\nFROM spans\n'
      + 'GROUP BY service_name\nORDER BY p95_duration_ns DESC',
  },
  {
    title: 'Errors over time',
    query: "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute,\n  count(*) FILTER (WHERE status_code = 'error') AS errors,\n"
      + "  count(*) AS spans\nFROM spans\nWHERE start_time > now() - INTERVAL '1 hour'\nGROUP BY minute\nORDER BY minute",
  },
  {
    title: 'Spans per service over time',
    query: "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute,\n  service_name,\n  count(*) AS spans\nFROM spans\n"
      + "WHERE start_time > now() - INTERVAL '1 hour'\nGROUP BY minute, service_name\nORDER BY minute",
  },
  { title: 'Slowest spans', query: 'SELECT trace_id, service_name, name, duration_ns, start_time\nFROM spans\nORDER BY duration_ns DESC\nLIMIT 20' },
  {
    title: 'Slowest traces',
    query: 'SELECT trace_id, root_service_name, root_span_name, duration_ns, span_count, error_count\nFROM traces\n'
      + 'ORDER BY duration_ns DESC\nLIMIT 20',
  },
  {
    title: 'Top HTTP routes',
    query: "SELECT attributes['http.route'] AS route, count(*) AS spans\nFROM spans\nWHERE attributes['http.route'] IS NOT NULL\n"
      + 'GROUP BY route\nORDER BY spans DESC\nLIMIT 20',
  },
];

// ---------------------------------------------------------------------------------------------------
// Reading the result as it streams.

/**
 * Takes rows out of the server's JSON result (`{"columns":[…],"rows":[[…],…]}`) while it arrives in
 * pieces: `push(text)` returns the rows completed by that piece; `columns` is set once its array is whole;
 * `complete` turns true at the closing brace (a body that ends before it was cut short).
 */
export class ResultStream {
  constructor() {
    this.columns = null;
    this.complete = false;
    this.text = '';
    this.at = 0; // next character to scan
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.stringStart = -1;
    this.key = null; // the last key read at the top level
    this.valueStart = -1; // start of the `columns` array being read
    this.rowStart = -1; // start of the row being read
    this.inRows = false;
  }

  push(piece) {
    this.text += piece;
    const rows = [];
    const text = this.text;
    for (let i = this.at; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 92 /* \ */) this.escaped = true;
        else if (c === 34 /* " */) {
          this.inString = false;
          if (this.depth === 1) this.key = JSON.parse(text.slice(this.stringStart, i + 1));
        }
      } else if (c === 34) {
        this.inString = true;
        this.stringStart = i;
      } else if (c === 91 /* [ */ || c === 123 /* { */) {
        this.depth += 1;
        if (this.depth === 2 && this.key === 'columns') this.valueStart = i;
        else if (this.depth === 2 && this.key === 'rows') this.inRows = true;
        else if (this.depth === 3 && this.inRows) this.rowStart = i;
      } else if (c === 93 /* ] */ || c === 125 /* } */) {
        this.depth -= 1;
        if (this.depth === 1 && this.valueStart >= 0) {
          this.columns = JSON.parse(text.slice(this.valueStart, i + 1));
          this.valueStart = -1;
        } else if (this.depth === 2 && this.rowStart >= 0) {
          rows.push(JSON.parse(text.slice(this.rowStart, i + 1)));
          this.rowStart = -1;
        } else if (this.depth === 1 && this.inRows) {
          this.inRows = false;
        } else if (this.depth === 0) {
          this.complete = true;
        }
      }
    }
    // Keep only the text of a value still being read, so memory holds one row, not the whole answer.
    const keep = [this.rowStart, this.valueStart, this.inString ? this.stringStart : -1].filter((n) => n >= 0);
    const from = keep.length ? Math.min(...keep) : text.length;
    this.text = text.slice(from);
    this.at = text.length - from;
    for (const name of ['rowStart', 'valueStart', 'stringStart']) if (this[name] >= 0) this[name] -= from;
    return rows;
  }
}

// ---------------------------------------------------------------------------------------------------
// How cells look.

/** A short name for an Arrow type: `string`, `int64`, `timestamp`, `map`, … (the full one in a tooltip). */
export function shortType(type) {
  const t = String(type || '');
  if (/^(Utf8|LargeUtf8|Utf8View)$/.test(t)) return 'string';
  if (/^Timestamp/.test(t)) return 'timestamp';
  if (t === 'Boolean') return 'bool';
  const head = t.split('(')[0];
  return head.replace(/^Large/, '').toLowerCase();
}

/** A timestamp as the server writes it (RFC 3339, UTC, up to ns) in the reader's zone, digits kept. */
function timeText(value) {
  const ms = parseTime(value);
  if (!Number.isFinite(ms) || !String(value).includes('T')) return String(value);
  const fraction = /\.(\d+)/.exec(value);
  // Whole seconds (time buckets, mostly) read better without `.000`.
  if (!fraction || /^0+$/.test(fraction[1])) return timestamp(ms).slice(0, 19);
  const finer = fraction[1].length > 3 ? fraction[1].slice(3).replace(/0+$/, '') : '';
  return `${timestamp(ms)}${finer}`;
}

const TRACE_ID = /^[0-9a-f]{32}$/;

/** One table cell for `value` of column `column` (with `kind` from its type). */
function cell(value, column) {
  if (value === null || value === undefined) return h('td', { class: 'null' }, 'NULL');
  if (typeof value === 'object') {
    const text = JSON.stringify(value);
    return h('td', { class: 'json', title: text }, text);
  }
  if (column.kind === 'number') {
    const title = column.durations && Number.isFinite(Number(value)) ? duration(value) : undefined;
    return h('td', { class: 'num', title }, String(value));
  }
  if (column.kind === 'time' && typeof value === 'string') return h('td', { class: 'time', title: value }, timeText(value));
  const text = String(value);
  // A trace ID opens its trace: the console is where one finds the trace worth looking at.
  if (/trace_id$/.test(column.name) && TRACE_ID.test(text)) {
    return h('td', { class: 'id' }, h('a', { href: `/trace/${text}`, title: 'Open this trace' }, text));
  }
  return h('td', { class: text.includes('\n') ? 'multiline' : undefined, title: text.length > 60 ? text : undefined }, text);
}

// ---------------------------------------------------------------------------------------------------
// Recent queries.

function history() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(list) ? list.filter((q) => typeof q === 'string') : [];
  } catch {
    return [];
  }
}

function remember(query) {
  const list = [query, ...history().filter((q) => q !== query)].slice(0, HISTORY_LENGTH);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
}

// ---------------------------------------------------------------------------------------------------
// The page.

export function mount(root, ctx) {
  const page = new SqlPage(root, ctx);
  return () => page.unmount();
}

class SqlPage {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.run = null; // the query being shown: see start()
    this.view = null; // 'table' | 'line' | 'bar': the person's choice of chart, kept across pages
    this.build(root);
    this.loadSchema();
    this.showHistory();
    const asked = ctx.query.get('q');
    this.editor.value = asked ?? history()[0] ?? EXAMPLES[0].query;
    if (asked) this.start();
    else this.editor.focus();
  }

  unmount() {
    this.run?.controller.abort();
    clearInterval(this.run?.ticker);
    this.run = null; // a run still finishing sees it is no longer shown
    this.schemaController?.abort();
    this.resize.disconnect();
  }

  build(root) {
    this.editor = h('textarea', {
      class: 'sql-editor', autocapitalize: 'off', autocomplete: 'off', rows: 7,
      'aria-label': 'SQL query', placeholder: 'SELECT … FROM spans  (Ctrl+Enter runs)', onkeydown: (e) => this.key(e),
    });
    this.editor.spellcheck = false;
    this.runButton = h('button', { class: 'primary run', title: 'Run (Ctrl+Enter)', onclick: () => this.start() }, '▶ Run');
    this.cancelButton = h('button', { class: 'cancel', disabled: true, onclick: () => this.cancel() }, 'Cancel');
    this.csvButton = h('button', { class: 'csv', disabled: true, title: 'Download the whole result as CSV (runs the query again)', onclick: () => this.csv() }, '⤓ CSV');
    this.status = h('span', { class: 'sql-status dim', role: 'status', dataset: { state: 'idle' } });
    this.messages = h('div', { class: 'sql-messages' });
    this.viewSwitch = h('div', { class: 'view-switch', role: 'group', 'aria-label': 'Chart' });
    this.chartNote = h('span', { class: 'chart-note dim' });
    this.pager = h('div', { class: 'pager' });
    this.chartBox = h('div', { class: 'chart-box' });
    this.tableBox = h('div', { class: 'sql-table' });
    this.schemaBox = h('div', { class: 'schema' }, h('p', { class: 'dim' }, 'Loading tables…'));
    this.recentBox = h('ol', { class: 'recent' });
    const examples = h('ul', { class: 'examples' }, EXAMPLES.map((example) => h('li', {},
      h('button', { class: 'link', title: example.query, onclick: () => this.load(example.query, true) }, example.title))));
    root.append(h('div', { class: 'sql-page' },
      h('aside', { class: 'sql-side' },
        h('h3', {}, 'Tables'), this.schemaBox,
        h('h3', {}, 'Examples'), examples,
        h('h3', {}, 'Recent'), this.recentBox),
      h('section', { class: 'sql-main' },
        this.editor,
        h('div', { class: 'toolbar' }, this.runButton, this.cancelButton, this.status, h('span', { class: 'grow' }), this.csvButton),
        this.messages,
        h('div', { class: 'sql-result' },
          h('div', { class: 'toolbar result-bar' }, this.viewSwitch, this.chartNote, h('span', { class: 'grow' }), this.pager),
          this.chartBox, this.tableBox))));
    // A chart is drawn to the width it has; draw it again when that changes.
    let width = 0;
    this.resize = new ResizeObserver(() => {
      const now = this.chartBox.clientWidth;
      if (Math.abs(now - width) > 8) { width = now; this.drawChart(); }
    });
    this.resize.observe(this.chartBox);
  }

  // -- Editor ---------------------------------------------------------------------------------------

  key(event) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      this.start();
    } else if (event.key === 'Tab' && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      if (event.shiftKey) this.outdent(); else this.insert('  ');
    }
  }

  /** Types `text` at the cursor as if typed, so Undo takes it back. */
  insert(text) {
    const editor = this.editor;
    editor.focus();
    if (!document.execCommand('insertText', false, text)) {
      editor.setRangeText(text, editor.selectionStart, editor.selectionEnd, 'end');
    }
  }

  /** Shift+Tab: takes up to two spaces off the start of the cursor's line. */
  outdent() {
    const editor = this.editor;
    const lineStart = editor.value.lastIndexOf('\n', editor.selectionStart - 1) + 1;
    const spaces = /^ {1,2}/.exec(editor.value.slice(lineStart))?.[0].length || 0;
    if (!spaces) return;
    const [start, end] = [editor.selectionStart, editor.selectionEnd];
    editor.setSelectionRange(lineStart, lineStart + spaces);
    document.execCommand('delete');
    editor.setSelectionRange(Math.max(lineStart, start - spaces), Math.max(lineStart, end - spaces));
  }

  load(query, runNow) {
    this.editor.value = query;
    this.editor.focus();
    if (runNow) this.start();
  }

  // -- Schema and history ---------------------------------------------------------------------------

  async loadSchema() {
    this.schemaController = new AbortController();
    try {
      const response = await postSql(SCHEMA_QUERY, 'json', this.schemaController.signal);
      const { rows } = await response.json();
      const tables = new Map();
      for (const [table, column, type] of rows) {
        if (!tables.has(table)) tables.set(table, []);
        tables.get(table).push({ column, type });
      }
      // `spans` is the table most queries start from.
      const names = [...tables.keys()].sort((a, b) => (a === 'spans' ? -1 : b === 'spans' ? 1 : a.localeCompare(b)));
      clear(this.schemaBox).append(...names.map((name) => this.tableEntry(name, tables.get(name))));
    } catch (error) {
      if (error.name === 'AbortError') return;
      clear(this.schemaBox).append(notice('error', `Cannot list the tables: ${error.message}`));
    }
  }

  tableEntry(name, columns) {
    const quote = (id) => (/^[a-z_][a-z0-9_]*$/.test(id) ? id : `"${id.replace(/"/g, '""')}"`);
    return h('details', { class: 'table', open: true, dataset: { table: name } },
      h('summary', {},
        h('button', { class: 'link table-name', title: `Insert ${name}`, onclick: (e) => { e.preventDefault(); this.insert(quote(name)); } }, name),
        h('span', { class: 'dim' }, ` ${columns.length}`)),
      h('ul', {}, columns.map(({ column, type }) => h('li', { dataset: { column } },
        h('button', { class: 'link column', title: `Insert ${column}`, onclick: () => this.insert(quote(column)) }, column),
        h('span', { class: 'type', title: type }, shortType(type))))));
  }

  showHistory() {
    const list = history();
    clear(this.recentBox).append(...(list.length
      ? list.map((query) => h('li', {}, h('button', { class: 'link', title: query, onclick: () => this.load(query, false) },
        query.replace(/\s+/g, ' '))))
      : [h('li', { class: 'dim' }, 'Queries you run appear here.')]));
  }

  // -- Running --------------------------------------------------------------------------------------

  /** Runs the editor's query, showing rows as they arrive. */
  async start() {
    const query = this.editor.value.trim();
    if (!query) return;
    this.cancel();
    this.ctx.replaceQuery({ q: query });
    remember(query);
    this.showHistory();
    const run = {
      query, columns: null, rows: [], page: 0, started: performance.now(), firstRows: null, finished: null,
      state: 'running', problem: null, warning: null, controller: new AbortController(), plan: null,
    };
    this.run = run;
    this.view = null;
    clear(this.messages);
    clear(this.chartBox);
    clear(this.tableBox);
    clear(this.viewSwitch);
    this.chartNote.textContent = '';
    this.setRunning(true);
    run.ticker = setInterval(() => this.showStatus(), 100);
    this.showStatus();
    try {
      const response = await postSql(query, 'json', run.controller.signal);
      run.warning = response.headers.get('Warning');
      await this.read(run, response.body.getReader());
    } catch (error) {
      if (run !== this.run) { clearInterval(run.ticker); return; }
      if (error.name === 'AbortError') {
        if (run.state === 'running') run.state = 'cancelled';
      } else if (error instanceof ApiError) {
        run.state = 'error';
        run.problem = error;
        if (error.status === 0) {
          // No status line at all: the server is down, or the query failed while its answer was starting.
          run.problem = { message: `${error.message}. Either the server cannot be reached, or it ended the connection before `
            + 'its answer began (a query that fails just as its first rows are sent can end this way; the server\'s log has the reason).' };
        }
      } else {
        // The body broke off: the server met an error after its first rows and can only end the response.
        run.state = 'error';
        run.problem = { message: `The result was cut short after ${count(run.rows.length)} rows: the connection ended before the result did `
          + `(${error.message}). The server ends a response this way when the query fails after sending its first rows; its log has the reason.` };
      }
    }
    clearInterval(run.ticker);
    if (run !== this.run) return;
    run.finished = performance.now();
    this.setRunning(false);
    this.finish(run);
  }

  async read(run, reader) {
    const decoder = new TextDecoder();
    const stream = new ResultStream();
    let scheduled = false;
    for (;;) {
      const { value, done } = await reader.read();
      const rows = stream.push(done ? decoder.decode() : decoder.decode(value, { stream: true }));
      if (stream.columns && !run.columns) {
        run.columns = stream.columns.map((c) => ({
          name: c.name, type: c.type, kind: typeKind(c.type), durations: valueFormatter(c.name) === duration,
        }));
      }
      if (rows.length) {
        if (run.firstRows === null) run.firstRows = performance.now();
        const room = MAX_ROWS - run.rows.length;
        for (const row of rows.slice(0, room)) run.rows.push(row);
        if (rows.length > room) {
          run.state = 'limited';
          run.controller.abort();
          await reader.cancel().catch(() => {});
          break;
        }
      }
      // Draw at most once a frame however fast rows come; the page being looked at fills as they do.
      if (!scheduled && (rows.length || done)) {
        scheduled = true;
        requestAnimationFrame(() => { scheduled = false; if (run === this.run) this.showRows(); });
      }
      if (done) break;
    }
    if (run.state === 'running') {
      if (!stream.complete) throw new Error('the answer ended before its closing bracket');
      run.state = 'done';
    }
  }

  cancel() {
    if (this.run?.state === 'running') {
      this.run.state = 'cancelled';
      this.run.controller.abort();
    }
  }

  setRunning(running) {
    this.cancelButton.disabled = !running;
    this.runButton.disabled = running;
    this.csvButton.disabled = running || !this.run;
  }

  showStatus() {
    const run = this.run;
    if (!run) return;
    const end = run.finished ?? performance.now();
    const elapsed = seconds(end - run.started);
    const rows = `${count(run.rows.length)} ${run.rows.length === 1 ? 'row' : 'rows'}`;
    const text = {
      running: `Running… ${rows} · ${elapsed}`,
      done: `${rows} · ${elapsed}`,
      limited: `First ${rows} · ${elapsed} · stopped at the page's limit`,
      cancelled: `Cancelled after ${rows} · ${elapsed}`,
      error: run.rows.length ? `Failed after ${rows} · ${elapsed}` : `Failed · ${elapsed}`,
    }[run.state];
    this.status.textContent = text;
    this.status.dataset.state = run.state;
    this.status.dataset.rows = String(run.rows.length);
    this.status.title = run.firstRows === null ? '' : `first rows after ${seconds(run.firstRows - run.started)}`;
  }

  /** The end of a run: its messages, status, chart, and the table as it stands. */
  finish(run) {
    this.showStatus();
    if (run.problem) {
      const status = run.problem.status ? `HTTP ${run.problem.status}: ` : '';
      this.messages.append(notice('error', `${status}${run.problem.message}`));
    }
    if (run.warning) this.messages.append(notice('warning', `Partial answer: ${run.warning}`));
    if (run.state === 'limited') {
      this.messages.append(notice('warning', `The page keeps the first ${count(MAX_ROWS)} rows; add a LIMIT or an aggregate, or download the result as CSV.`));
    }
    if (run.state === 'done' && run.columns && !run.rows.length) this.messages.append(notice('info', 'No rows.'));
    run.plan = run.columns ? planChart(run.columns, run.rows) : null;
    this.showViews();
    this.drawChart();
    this.showRows();
  }

  // -- Result: chart --------------------------------------------------------------------------------

  showViews() {
    const plan = this.run.plan;
    clear(this.viewSwitch);
    if (!plan) { this.chartNote.textContent = ''; return; }
    this.view = this.view ?? plan.preferred;
    this.chartNote.textContent = plan.note && this.view !== 'table' ? `Chart: ${plan.note}` : '';
    const labels = { table: 'Table only', line: 'Line', bar: 'Bar' };
    for (const view of ['table', ...plan.kinds]) {
      this.viewSwitch.append(h('button', {
        'aria-pressed': String(this.view === view),
        dataset: { view },
        onclick: () => { this.view = view; this.showViews(); this.drawChart(); },
      }, labels[view]));
    }
  }

  drawChart() {
    const run = this.run;
    clear(this.chartBox);
    const show = Boolean(run?.plan && this.view && this.view !== 'table');
    this.chartBox.hidden = !show;
    if (!show) return;
    const width = Math.max(this.chartBox.clientWidth - 2, 320);
    this.chartBox.append(run.plan.draw(this.view, width));
  }

  // -- Result: table --------------------------------------------------------------------------------

  showRows() {
    const run = this.run;
    if (!run?.columns) return;
    const pages = Math.max(1, Math.ceil(run.rows.length / PAGE_SIZE));
    run.page = Math.min(run.page, pages - 1);
    const from = run.page * PAGE_SIZE;
    const shown = run.rows.slice(from, from + PAGE_SIZE);
    // While rows stream in, only the page being looked at is drawn again, and only until it is full.
    if (this.tableBox.dataset.key !== `${run.page}:${shown.length}` || !this.tableBox.firstChild) {
      this.tableBox.dataset.key = `${run.page}:${shown.length}`;
      clear(this.tableBox).append(h('table', { class: 'grid result', dataset: { page: run.page + 1, rows: shown.length } },
        h('thead', {}, h('tr', {}, h('th', { class: 'row-number' }, '#'), run.columns.map((c) => h('th', {
          class: c.kind === 'number' ? 'num' : undefined, title: c.type,
        }, c.name, h('span', { class: 'type' }, shortType(c.type)))))),
        h('tbody', {}, shown.map((row, i) => h('tr', { onclick: (e) => e.currentTarget.classList.toggle('expanded') },
          h('td', { class: 'row-number' }, String(from + i + 1)),
          run.columns.map((column, c) => cell(row[c], column)))))));
    }
    this.showPager(pages, from, shown.length);
    this.showStatus();
  }

  showPager(pages, from, shown) {
    const run = this.run;
    const more = run.state === 'running' ? '+' : '';
    const go = (page) => { run.page = page; this.showRows(); this.tableBox.scrollTop = 0; };
    clear(this.pager).append(
      h('span', { class: 'range dim', dataset: { total: run.rows.length } },
        shown ? `Rows ${count(from + 1)}–${count(from + shown)} of ${count(run.rows.length)}${more}` : ''),
      h('button', { class: 'prev', disabled: run.page === 0, title: 'Previous page', onclick: () => go(run.page - 1) }, '‹ Prev'),
      h('span', { class: 'page-number' }, `Page ${run.page + 1} of ${pages}${more}`),
      h('button', { class: 'next', disabled: run.page >= pages - 1, title: 'Next page', onclick: () => go(run.page + 1) }, 'Next ›'));
  }

  // -- CSV ------------------------------------------------------------------------------------------

  async csv() {
    const query = this.run?.query;
    if (!query) return;
    this.csvButton.disabled = true;
    try {
      const response = await postSql(query, 'csv');
      download('spanlake.csv', await response.blob());
    } catch (error) {
      clear(this.messages).append(notice('error', `CSV download failed: ${error.message}`));
    } finally {
      this.csvButton.disabled = this.run?.state === 'running';
    }
  }
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
