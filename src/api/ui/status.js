// The status page (`/status`): what this server is (version, revision) and how it is doing: data stored,
// ingest rate, the WAL and buffer, compaction, the object store, refusals. Figures come from `/metrics`
// (Prometheus text; an admin's when auth is on), read again every few seconds while the page is open,
// and from one SQL count for the tenant chosen in the header.

import { identity, getJSON, request, sql as postSql } from './api.js';
import { h, clear, notice } from './dom.js';
import { bytes, count, duration, timestamp } from './format.js';
import { compact, lineChart } from './chart.js';

/** How often `/metrics` is read while the page is open. */
const POLL_MS = 3000;
/** Points of the ingest-rate chart (at POLL_MS apart, ten minutes). */
const RATE_HISTORY = 200;

// ---------------------------------------------------------------------------------------------------
// Prometheus text format.

/** The samples of a Prometheus text exposition, with what `# TYPE` and `# HELP` say of each family. */
export class Metrics {
  constructor(samples, types, help) {
    this.samples = samples;
    this.types = types;
    this.help = help;
  }

  /** Samples named `name` whose labels include every pair of `where`. */
  series(name, where = {}) {
    return this.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
  }

  /** True when the server reported `name` at all (a counter appears at its first increment). */
  has(name) {
    return this.samples.some((s) => s.name === name);
  }

  /** The sum over every label set of `name` (0 when absent: counters appear when first counted). */
  sum(name, where = {}) {
    return this.series(name, where).reduce((total, s) => total + s.value, 0);
  }

  /** The largest value of `name` across its label sets (for gauges such as a lag). */
  max(name) {
    const values = this.series(name).map((s) => s.value);
    return values.length ? Math.max(...values) : 0;
  }

  /** `{labelValue: sum}` of `name` grouped by its label `label`. */
  by(name, label) {
    const out = {};
    for (const s of this.series(name)) {
      const key = s.labels[label] ?? '';
      out[key] = (out[key] || 0) + s.value;
    }
    return out;
  }
}

/** Parses the Prometheus text format: comments, `name{label="value",…} value [timestamp]` lines. */
export function parseMetrics(text) {
  const samples = [];
  const types = new Map();
  const help = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const match = /^#\s*(TYPE|HELP)\s+(\S+)\s*(.*)$/.exec(line);
      if (match) (match[1] === 'TYPE' ? types : help).set(match[2], match[3]);
      continue;
    }
    const sample = parseSample(line);
    if (sample) samples.push(sample);
  }
  return new Metrics(samples, types, help);
}

function parseSample(line) {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
  if (!name) return null;
  let i = name.length;
  const labels = {};
  if (line[i] === '{') {
    i += 1;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i += 1;
      if (line[i] === '}') { i += 1; break; }
      const label = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0];
      if (!label) return null;
      i += label.length;
      while (line[i] === ' ') i += 1;
      if (line[i] !== '=' || line[i + 1] !== '"') return null;
      i += 2;
      let value = '';
      // Label values escape backslash, quote and newline.
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) {
          const next = line[i + 1];
          value += next === 'n' ? '\n' : next;
          i += 2;
        } else {
          value += line[i];
          i += 1;
        }
      }
      if (line[i] !== '"') return null;
      i += 1;
      labels[label] = value;
    }
  }
  const [valueText] = line.slice(i).trim().split(/\s+/);
  const value = { '+Inf': Infinity, Inf: Infinity, '-Inf': -Infinity, NaN }[valueText] ?? Number(valueText);
  if (valueText === undefined || (Number.isNaN(value) && valueText !== 'NaN')) return null;
  return { name, labels, value };
}

/** `3 blocks`, `1 block`. */
function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------------------------------
// The page.

export function mount(root, _ctx) {
  const page = new StatusPage(root);
  return () => page.unmount();
}

class StatusPage {
  constructor(root) {
    this.stopped = false;
    this.timer = null;
    this.controller = new AbortController();
    this.polls = 0;
    this.previous = null; // {at, accepted}: the last poll, for the rate
    this.rates = []; // {at, rate}
    this.build(root);
    this.loadBuildInfo();
    this.poll();
  }

  unmount() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller.abort();
  }

  build(root) {
    this.version = h('h2', {}, 'spanlake');
    this.revision = h('span', { class: 'dim' });
    this.updated = h('span', { class: 'dim updated' });
    this.messages = h('div', { class: 'status-messages' });
    this.figures = {};
    const figure = (key, label) => {
      const value = h('div', { class: 'value unknown' }, '…');
      const detail = h('div', { class: 'detail' });
      const box = h('div', { class: 'figure', dataset: { figure: key } }, h('div', { class: 'label' }, label), value, detail);
      this.figures[key] = { box, value, detail, label: box.firstChild };
      return box;
    };
    this.rateChart = h('div', { class: 'rate-chart' }, h('p', { class: 'dim' }, 'The rate appears after a few readings.'));
    this.tenants = h('div', {});
    this.allMetrics = h('tbody');
    this.filter = h('input', { class: 'filter', type: 'search', placeholder: 'Filter metrics (name or label)', oninput: () => this.showAll() });
    this.root = h('div', { class: 'page status-page', dataset: { polls: '0' } },
      h('div', { class: 'status-head' }, this.version, this.revision, h('span', { class: 'grow' }), this.updated,
        h('button', { class: 'refresh', onclick: () => this.poll(true) }, '↻ Refresh')),
      this.messages,
      h('div', { class: 'status-grid' },
        figure('spans-stored', 'Spans stored'),
        figure('blocks', 'Blocks stored'),
        figure('ingest-rate', 'Ingest rate'),
        figure('spans-accepted', 'Spans accepted'),
        figure('wal-bytes', 'WAL on disk'),
        figure('buffer-bytes', 'Ingester buffer'),
        figure('block-spans', 'Spans written to blocks'),
        figure('tenants', 'Tenants'),
        figure('compaction', 'Compaction outstanding'),
        figure('object-store', 'Object-store requests'),
        figure('refused', 'Refused OTLP requests'),
        figure('query-latency', 'SQL query time')),
      h('div', { class: 'status-section' },
        h('div', { class: 'panel' }, h('h3', {}, 'Ingest rate (spans/s) while this page is open'), h('div', { class: 'body' }, this.rateChart)),
        h('div', { class: 'panel' }, h('h3', {}, 'Tenants'), h('div', { class: 'body' }, this.tenants))),
      h('details', { class: 'metrics-all' }, h('summary', {}, 'All metrics'), this.filter,
        h('div', { class: 'scroll' }, h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Metric'), h('th', {}, 'Labels'), h('th', { class: 'num' }, 'Value'))), this.allMetrics))));
    root.append(this.root);
  }

  set(key, value, text, detail, label) {
    const figure = this.figures[key];
    figure.box.dataset.value = value === null ? '' : String(value);
    figure.value.textContent = text;
    figure.value.classList.toggle('unknown', value === null);
    if (detail !== undefined) figure.detail.textContent = detail;
    if (label !== undefined) figure.label.textContent = label;
  }

  async loadBuildInfo() {
    try {
      const info = await getJSON('/api/status/buildinfo', undefined, this.controller.signal);
      this.version.textContent = `spanlake ${info.version}`;
      this.version.dataset.version = info.version;
      this.revision.textContent = [info.revision && `revision ${info.revision}`, info.branch && info.branch !== 'HEAD' && `branch ${info.branch}`]
        .filter(Boolean).join(' · ');
      this.revision.dataset.revision = info.revision || '';
    } catch (error) {
      if (error.name !== 'AbortError') this.messages.append(notice('error', `Build information: ${error.message}`));
    }
  }

  /** Reads the figures once, then again in POLL_MS (not while the tab is hidden: nobody is looking). */
  async poll(now = false) {
    clearTimeout(this.timer);
    if (this.stopped) return;
    // A Refresh during a timed reading starts a new chain of readings; the older one ends at its await.
    this.chain = (this.chain || 0) + 1;
    const chain = this.chain;
    if (!document.hidden || now) {
      // The count scans the tenant's blocks: one at a time, and a slow one does not hold up /metrics.
      this.counting = this.counting ?? this.readCount().finally(() => { this.counting = null; });
      await Promise.all([this.readMetrics(), now ? this.counting : null]);
      if (this.stopped || chain !== this.chain) return;
      this.polls += 1;
      this.root.dataset.polls = String(this.polls);
      this.updated.textContent = `updated ${timestamp(Date.now()).slice(11, 19)} · every ${POLL_MS / 1000} s`;
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  async readCount() {
    const tenant = identity.tenant || '(default)';
    try {
      const response = await postSql('SELECT count(*) AS spans FROM spans', 'json', this.controller.signal);
      const { rows } = await response.json();
      const spans = Number(rows[0][0]);
      this.set('spans-stored', spans, count(spans), `tenant ${tenant}, blocks and ingester (SQL count)`);
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.set('spans-stored', null, '—', `SQL count for tenant ${tenant} failed: ${error.message}`);
    }
  }

  async readMetrics() {
    let metrics;
    try {
      const response = await request('/metrics', { accept: 'text/plain', signal: this.controller.signal });
      metrics = parseMetrics(await response.text());
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.metricsRefused(error);
      return;
    }
    this.metricsProblem?.remove();
    this.metricsProblem = null;
    this.metrics = metrics;
    this.showFigures(metrics);
    this.showTenants(metrics);
    this.showAll();
  }

  metricsRefused(error) {
    const needsAdmin = error.status === 401 || error.status === 403;
    const text = {
      401: `/metrics answered HTTP 401: ${error.message}\nThe server's figures need an admin token (enter it as Token above); `
        + "a tenant's token shows that tenant's span count. The version below needs none.",
      403: `/metrics answered HTTP 403: ${error.message}\nThe server's figures need an admin token; `
        + "the version and your tenant's span count below still work.",
    }[error.status] ?? `/metrics failed${error.status ? ` (HTTP ${error.status})` : ''}: ${error.message}`;
    this.metricsProblem?.remove();
    this.metricsProblem = notice(needsAdmin ? 'warning' : 'error', text);
    this.messages.append(this.metricsProblem);
    const why = needsAdmin ? 'needs an admin token' : 'unavailable';
    for (const key of Object.keys(this.figures)) {
      if (key !== 'spans-stored') this.set(key, null, '—', why);
    }
    clear(this.tenants).append(h('p', { class: 'dim' }, `Per-tenant figures come from /metrics: ${why}.`));
  }

  showFigures(m) {
    const accepted = m.sum('spanlake_spans_accepted_total');
    const at = performance.now();
    if (this.previous && accepted >= this.previous.accepted && at > this.previous.at) {
      const rate = (accepted - this.previous.accepted) / ((at - this.previous.at) / 1000);
      this.rates.push({ at: Date.now(), rate });
      if (this.rates.length > RATE_HISTORY) this.rates.shift();
      const seconds = ((at - this.previous.at) / 1000).toFixed(1);
      this.set('ingest-rate', rate, `${rate >= 100 ? count(Math.round(rate)) : rate.toFixed(1)} spans/s`, `accepted over the last ${seconds} s`);
      this.showRate();
    } else if (!this.previous) {
      this.set('ingest-rate', null, 'measuring…', 'needs two readings');
    }
    this.previous = { at, accepted };

    const rejected = m.sum('spanlake_spans_rejected_total');
    const deduplicated = m.sum('spanlake_spans_deduplicated_total');
    this.set('spans-accepted', accepted, count(accepted),
      `since start, all tenants${rejected ? ` · ${count(rejected)} rejected` : ''}${deduplicated ? ` · ${count(deduplicated)} resent` : ''}`);

    const blocks = m.sum('spanlake_catalog_blocks');
    this.set('blocks', blocks, count(blocks), `in the catalogue, all tenants · ${bytes(m.sum('spanlake_catalog_bloom_bytes'))} of blooms in memory`);

    const wal = m.sum('spanlake_wal_bytes');
    this.set('wal-bytes', wal, bytes(wal), `${count(wal)} bytes of segments on local disk`);
    const buffer = m.sum('spanlake_ingester_buffer_bytes');
    this.set('buffer-bytes', buffer, bytes(buffer), `${count(buffer)} bytes in memory, waiting to be cut into blocks`);

    const blockSpans = m.sum('spanlake_block_spans_written_total');
    const blocksWritten = m.sum('spanlake_blocks_written_total');
    const failures = m.sum('spanlake_flush_failures_total');
    this.set('block-spans', blockSpans, count(blockSpans),
      `by this process: ${plural(blocksWritten, 'block')}, ${bytes(m.sum('spanlake_block_bytes_written_total'))}${failures ? ` · ${count(failures)} failed uploads retried` : ''}`);

    const tenants = m.sum('spanlake_catalog_tenants');
    this.set('tenants', tenants, count(tenants), 'with blocks in the catalogue');

    const outstanding = m.sum('spanlake_compaction_blocks_outstanding');
    const lag = m.max('spanlake_compaction_lag_seconds');
    this.set('compaction', outstanding, plural(outstanding, 'block'),
      `${outstanding && lag ? `oldest waiting ${duration(lag * 1e9)} · ` : ''}${count(m.sum('spanlake_compaction_blocks_total', { direction: 'in' }))} merged so far`);
    this.figures.compaction.box.classList.toggle('warn', m.sum('spanlake_compaction_failures_total') > 0);

    const operations = m.by('spanlake_object_store_requests_total', 'operation');
    const requests = Object.values(operations).reduce((a, b) => a + b, 0);
    this.set('object-store', requests, count(requests),
      Object.entries(operations).filter(([, n]) => n).map(([op, n]) => `${op} ${compact(n)}`).join(' · ') || 'none yet');

    // Whole OTLP requests refused, by reason; refusals for credentials (on any port) are counted apart and
    // may include some of those, so they are named beside the figure, not added to it.
    const refused = m.by('spanlake_requests_refused_total', 'reason');
    const refusedTotal = Object.values(refused).reduce((a, b) => a + b, 0);
    const auth = m.sum('spanlake_auth_refused_total');
    this.set('refused', refusedTotal, plural(refusedTotal, 'request'),
      [...Object.entries(refused).map(([reason, n]) => `${reason.replace(/_/g, ' ')} ${compact(n)}`),
        auth ? `${compact(auth)} refused for credentials (any port)` : ''].filter(Boolean).join(' · ') || 'none');
    this.figures.refused.box.classList.toggle('warn', refusedTotal > 0);

    const quantile = (q) => m.series('spanlake_query_duration_seconds', { endpoint: 'sql', quantile: q })[0]?.value;
    const queries = m.sum('spanlake_query_duration_seconds_count', { endpoint: 'sql' });
    const p50 = quantile('0.5');
    const p99 = quantile('0.99');
    if (Number.isFinite(p50)) {
      this.set('query-latency', p50, duration(p50 * 1e9), `median of ${plural(queries, 'query', 'queries')}${Number.isFinite(p99) ? ` · p99 ${duration(p99 * 1e9)}` : ''}`);
    } else {
      this.set('query-latency', null, '—', 'no SQL queries yet');
    }
  }

  showRate() {
    if (this.rates.length < 2) return;
    const width = Math.max(this.rateChart.clientWidth, 320);
    clear(this.rateChart).append(lineChart({
      xs: this.rates.map((r) => r.at),
      series: [{ name: 'spans/s', color: '#2f6fdb', values: this.rates.map((r) => r.rate) }],
      format: compact,
    }, { width, height: 150 }));
  }

  /** Accepted and rejected spans and compaction per tenant (the labels of those counters). */
  showTenants(m) {
    const accepted = m.by('spanlake_spans_accepted_total', 'tenant');
    const rejected = m.by('spanlake_spans_rejected_total', 'tenant');
    const outstanding = m.by('spanlake_compaction_blocks_outstanding', 'tenant');
    const names = [...new Set([...Object.keys(accepted), ...Object.keys(rejected), ...Object.keys(outstanding)])].filter(Boolean).sort();
    if (!names.length) {
      clear(this.tenants).append(h('p', { class: 'dim' }, 'No spans received since the server started.'));
      return;
    }
    clear(this.tenants).append(h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Tenant'), h('th', { class: 'num' }, 'Accepted'), h('th', { class: 'num' }, 'Rejected'),
        h('th', { class: 'num' }, 'Blocks to compact'))),
      h('tbody', {}, names.map((name) => h('tr', { dataset: { tenant: name } }, h('td', {}, name),
        h('td', { class: 'num' }, count(accepted[name] || 0)), h('td', { class: 'num' }, count(rejected[name] || 0)),
        h('td', { class: 'num' }, count(outstanding[name] || 0)))))));
  }

  /** Every sample, filtered by the text in the box (histogram buckets left out: they are many). */
  showAll() {
    if (!this.metrics) return;
    const filter = this.filter.value.trim().toLowerCase();
    const labelText = (labels) => Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(', ');
    const rows = this.metrics.samples
      .filter((s) => !s.name.endsWith('_bucket'))
      .filter((s) => !filter || `${s.name} ${labelText(s.labels)}`.toLowerCase().includes(filter));
    clear(this.allMetrics).append(...rows.map((s) => h('tr', {},
      h('td', { title: this.metrics.help.get(s.name) || '' }, s.name), h('td', {}, labelText(s.labels)),
      h('td', { class: 'num' }, Number.isInteger(s.value) ? count(s.value) : String(+s.value.toPrecision(6))))));
  }
}
