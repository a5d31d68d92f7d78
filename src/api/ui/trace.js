// The trace page (`/trace/{id}`): the waterfall of one trace from `/api/v2/traces/{id}`, its critical path,
// span details, a search within the trace, zoom, keyboard navigation and the OTLP/JSON download.
//
// Stays fast on large traces by never drawing more than the rows in view: the rows live in a tall spacer
// and only the ~40 visible ones exist in the DOM, rebuilt on scroll (virtualised rows). The overview above
// the waterfall draws every span into one canvas (aggregated bars), and a collapsed subtree shows one bar
// for its whole extent.

import { ApiError, request } from './api.js';
import { clear, download, h, notice } from './dom.js';
import * as format from './format.js';
import { buildTrace, criticalPath, spanMatches, valueText } from './tracemodel.js';

const ROW = 24;
const NAME_WIDTH = 380;
const INDENT = 14;
const MAX_INDENT = 24;
const OVERSCAN = 10;

export function mount(root, ctx) {
  const traceId = ctx.params.traceId;
  const page = h('div', { class: 'page fill trace-page' }, h('div', { class: 'dim' }, `Loading trace ${traceId}…`));
  root.append(page);
  const controller = new AbortController();
  const started = performance.now();
  let view = null;
  load(traceId, ctx, controller.signal)
    .then(({ data, fetched }) => {
      if (controller.signal.aborted) return;
      view = new TraceView(page, traceId, data, ctx);
      // For the render measurement (tests and BENCHMARKS): when the first rows are on screen.
      requestAnimationFrame(() => {
        const done = performance.now();
        page.dataset.rendered = 'true';
        page.dataset.fetchMs = (fetched - started).toFixed(1);
        page.dataset.renderMs = (done - fetched).toFixed(1);
        page.dataset.sinceNavigationMs = done.toFixed(1);
      });
    })
    .catch((error) => {
      if (error.name === 'AbortError') return;
      clear(page).append(
        h('h2', {}, `Trace ${traceId}`),
        notice('error', error instanceof ApiError && error.status === 404
          ? `No trace with ID ${traceId} (for this tenant and time range). ${error.message}`
          : error.message),
      );
    });
  return () => {
    controller.abort();
    view?.destroy();
  };
}

async function load(traceId, ctx, signal) {
  const params = { start: ctx.query.get('start'), end: ctx.query.get('end') };
  const response = await request(`/api/v2/traces/${encodeURIComponent(traceId)}`, { params, accept: 'application/json', signal });
  const data = await response.json();
  return { data, fetched: performance.now() };
}

class TraceView {
  constructor(page, traceId, data, ctx) {
    this.page = page;
    this.traceId = traceId;
    this.data = data;
    this.ctx = ctx;
    this.trace = buildTrace(data.trace || {});
    this.colors = format.serviceColors([...this.trace.services.keys()]);
    this.critical = criticalPath(this.trace);
    this.collapsed = new Set();
    this.visible = [];
    this.selected = -1;
    this.matches = [];
    this.matchSet = new Set();
    this.matchAt = -1;
    this.viewStart = 0;
    this.viewEnd = Math.max(1, this.trace.duration);
    this.showCritical = true;
    this.frame = 0;
    this.cleanups = [];
    this.build();
    this.refreshVisible();
    const wanted = ctx.query.get('span');
    const index = wanted ? this.trace.spans.findIndex((span) => span.id === wanted) : -1;
    if (index >= 0) this.reveal(index);
  }

  color(service) {
    return this.colors.get(service) || format.serviceColor(service);
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.searchTimer);
    for (const cleanup of this.cleanups) cleanup();
  }

  build() {
    const { trace } = this;
    const rootSpan = trace.spans[trace.roots[0]];
    const title = rootSpan ? [h('span', { class: 'service' }, rootSpan.service), ': ', rootSpan.name] : 'Empty trace';
    this.searchInput = h('input', {
      type: 'search', placeholder: 'Find in trace (name, service, attribute)…', size: 32, class: 'find',
      oninput: () => this.scheduleSearch(), onkeydown: (event) => this.onSearchKey(event),
    });
    this.matchCount = h('span', { class: 'dim match-count' });
    this.criticalButton = h('button', {
      type: 'button', 'aria-pressed': 'true', title: 'Highlight the critical path (c)', onclick: () => this.toggleCritical(),
    }, 'Critical path');
    this.resetZoomButton = h('button', { type: 'button', disabled: true, onclick: () => this.zoom(0, trace.duration) }, 'Reset zoom');
    const head = h('div', { class: 'trace-head' },
      h('h2', {}, title),
      h('span', { class: 'mono dim' }, this.traceId),
      h('span', {}, rootSpan ? format.timestamp(Number(trace.start / 1_000_000n)) : ''),
      h('span', {}, h('b', {}, format.duration(trace.duration))),
      h('span', { class: 'span-count' }, `${format.count(trace.spans.length)} spans`),
      h('span', {}, `${trace.services.size} ${trace.services.size === 1 ? 'service' : 'services'}`),
      h('span', {}, `depth ${trace.maxDepth + 1}`),
      trace.errors ? h('span', { class: 'badge error' }, `${format.count(trace.errors)} ${trace.errors === 1 ? 'error' : 'errors'}`) : null);
    const tools = h('div', { class: 'toolbar' },
      this.searchInput, this.matchCount,
      h('button', { type: 'button', title: 'Previous match (Shift+Enter)', onclick: () => this.nextMatch(-1) }, '↑'),
      h('button', { type: 'button', title: 'Next match (Enter)', onclick: () => this.nextMatch(1) }, '↓'),
      h('span', { class: 'grow' }),
      this.criticalButton,
      h('button', { type: 'button', onclick: () => this.collapseAll() }, 'Collapse all'),
      h('button', { type: 'button', onclick: () => this.expandAll() }, 'Expand all'),
      this.resetZoomButton,
      h('button', { type: 'button', title: 'The trace as OTLP/JSON, which /v1/traces takes back', onclick: () => this.download() }, 'Download OTLP JSON'));
    const legend = h('div', { class: 'legend' }, [...trace.services.entries()].sort((a, b) => b[1] - a[1]).map(([service, spans]) =>
      h('span', {}, h('span', { class: 'swatch', style: { background: this.color(service) } }), service, h('span', { class: 'dim' }, ` ${format.count(spans)}`))));
    const warnings = [];
    if (this.data.status === 'PARTIAL') warnings.push(notice('warning', `Partial trace: ${this.data.message || 'some blocks could not be read'}`));
    const orphans = trace.spans.filter((span) => span.orphan).length;
    if (orphans) warnings.push(notice('warning', `${format.count(orphans)} spans have a parent that is not in the trace; they are shown as roots.`));

    // Overview: every span in one canvas, with the zoomed window marked; drag on it to zoom.
    this.overview = h('canvas', { class: 'overview-canvas', height: 48 });
    this.overviewWindow = h('div', { class: 'overview-window' });
    this.overviewBrush = h('div', { class: 'brush' });
    const overview = h('div', { class: 'overview', title: 'Drag to zoom to a time range' }, this.overview, this.overviewWindow, this.overviewBrush);
    this.brushable(overview, this.overviewBrush, () => [0, trace.duration]);

    this.ticks = h('div', { class: 'ticks', title: 'Drag to zoom to a time range' });
    this.rulerBrush = h('div', { class: 'brush' });
    this.ticks.append(this.rulerBrush);
    this.brushable(this.ticks, this.rulerBrush, () => [this.viewStart, this.viewEnd]);
    const ruler = h('div', { class: 'ruler' }, h('div', { class: 'names-head', style: { width: `${NAME_WIDTH}px` } }, 'Service · span'), this.ticks);
    this.spacer = h('div', { class: 'spacer' });
    this.viewport = h('div', {
      class: 'viewport', tabindex: 0, role: 'tree', 'aria-label': 'Spans',
      onscroll: () => this.schedule(), onkeydown: (event) => this.onKey(event),
    }, this.spacer);
    this.spacer.addEventListener('click', (event) => this.onRowClick(event));
    this.detail = h('aside', { class: 'span-detail', hidden: true });
    const body = h('div', { class: 'trace-body' }, h('div', { class: 'waterfall' }, ruler, this.viewport), this.detail);
    clear(this.page).append(head, tools, legend, ...warnings, overview, body);

    const onResize = () => { this.drawOverview(); this.schedule(); };
    window.addEventListener('resize', onResize);
    this.cleanups.push(() => window.removeEventListener('resize', onResize));
    const onGlobalKey = (event) => {
      if (event.key === '/' && document.activeElement?.tagName !== 'INPUT' && document.activeElement?.tagName !== 'TEXTAREA') {
        event.preventDefault();
        this.searchInput.focus();
      }
    };
    document.addEventListener('keydown', onGlobalKey);
    this.cleanups.push(() => document.removeEventListener('keydown', onGlobalKey));
    requestAnimationFrame(() => this.drawOverview());
    this.viewport.focus({ preventScroll: true });
  }

  /** The spans shown, in order: every span whose ancestors are all expanded. */
  refreshVisible() {
    const { spans } = this.trace;
    const visible = [];
    for (let i = 0; i < spans.length;) {
      visible.push(i);
      // A collapsed span hides its subtree, which follows it contiguously in tree order.
      i += this.collapsed.has(i) ? spans[i].descendants + 1 : 1;
    }
    this.visible = visible;
    this.spacer.style.height = `${visible.length * ROW}px`;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.renderRows(); });
  }

  /** Draws the rows in view (and a few either side), nothing else. */
  renderRows() {
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.visible.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const rows = [];
    for (let at = first; at < last; at += 1) rows.push(this.row(this.visible[at], at));
    this.spacer.replaceChildren(...rows);
    this.drawTicks();
  }

  row(index, at) {
    const span = this.trace.spans[index];
    const onPath = this.showCritical && this.critical.has(index);
    const classes = ['wf-row'];
    if (index === this.selected) classes.push('selected');
    if (onPath) classes.push('critical');
    if (this.matchSet.has(index)) classes.push('match');
    if (span.error) classes.push('error');
    const collapsed = this.collapsed.has(index);
    const indent = Math.min(span.depth, MAX_INDENT) * INDENT;
    const name = h('div', { class: 'wf-name', style: { width: `${NAME_WIDTH}px`, paddingLeft: `${indent + 4}px` } },
      h('span', { class: 'toggle', dataset: { toggle: '1' }, title: span.children.length ? 'Collapse or expand (←/→)' : '' },
        span.children.length ? (collapsed ? '▸' : '▾') : ''),
      span.depth > MAX_INDENT ? h('span', { class: 'dim' }, `${span.depth}›`) : null,
      h('span', { class: 'swatch', style: { background: this.color(span.service) } }),
      h('span', { class: 'service' }, span.service),
      h('span', { class: 'label', title: span.name }, span.name),
      span.error ? h('span', { class: 'err', title: span.statusMessage || 'error' }, '!') : null,
      collapsed ? h('span', { class: 'badge' }, `+${format.count(span.descendants)}`) : null);
    const timeline = h('div', { class: 'wf-timeline' });
    const range = this.viewEnd - this.viewStart;
    const pct = (t) => ((t - this.viewStart) / range) * 100;
    if (collapsed && span.subtreeEnd > span.end) {
      timeline.append(this.bar('wf-agg', pct(span.start), pct(span.subtreeEnd), this.color(span.service)));
    }
    const left = pct(span.start);
    const right = pct(span.end);
    timeline.append(this.bar(span.error ? 'wf-bar error' : 'wf-bar', left, right, this.color(span.service)));
    if (onPath) {
      for (const [from, to] of this.critical.get(index)) timeline.append(this.bar('wf-cp', pct(from), pct(to)));
    }
    // The duration beside its bar: right of it, else left of it, else (a bar across the view) inside it.
    const label = h('span', { class: 'wf-duration' }, format.duration(span.duration));
    if (right < 82) label.style.left = `calc(${Math.max(0, right)}% + 4px)`;
    else if (left > 12) label.style.right = `calc(${100 - left}% + 4px)`;
    else {
      label.classList.add('inside');
      label.style.right = `calc(${Math.max(0, 100 - Math.min(right, 100))}% + 4px)`;
    }
    timeline.append(label);
    return h('div', {
      class: classes.join(' '), role: 'treeitem', 'aria-selected': index === this.selected ? 'true' : 'false',
      'aria-expanded': span.children.length ? String(!collapsed) : null,
      dataset: { index: String(index), spanId: span.id }, style: { top: `${at * ROW}px` },
    }, name, timeline);
  }

  /** A bar from `left`% to `right`% of the timeline, clipped to it; nothing when wholly outside. */
  bar(className, left, right, color) {
    const from = Math.max(0, left);
    const to = Math.min(100, right);
    if (to < 0 || from > 100 || to < from) return '';
    const bar = h('div', { class: className });
    bar.style.left = `${from}%`;
    bar.style.width = `max(1px, ${to - from}%)`;
    if (color) bar.style.background = color;
    return bar;
  }

  drawTicks() {
    const range = this.viewEnd - this.viewStart;
    const ticks = [0, 0.25, 0.5, 0.75].map((f) => {
      const tick = h('div', { class: 'tick' }, format.duration(this.viewStart + f * range));
      tick.style.left = `${f * 100}%`;
      return tick;
    });
    this.ticks.replaceChildren(...ticks, this.rulerBrush);
  }

  drawOverview() {
    const canvas = this.overview;
    const width = canvas.clientWidth || 1000;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(48 * ratio);
    const context = canvas.getContext('2d');
    context.scale(ratio, ratio);
    const { spans, duration } = this.trace;
    const total = Math.max(1, duration);
    const rowHeight = Math.max(48 / Math.max(spans.length, 1), 0.25);
    const colors = new Map();
    for (let i = 0; i < spans.length; i += 1) {
      const span = spans[i];
      let color = colors.get(span.service);
      if (!color) { color = this.color(span.service); colors.set(span.service, color); }
      context.fillStyle = color;
      const x = (span.start / total) * width;
      const w = Math.max(0.5, (span.duration / total) * width);
      context.fillRect(x, (i / spans.length) * 48, w, Math.max(rowHeight, 0.5));
    }
    this.placeOverviewWindow();
  }

  placeOverviewWindow() {
    const total = Math.max(1, this.trace.duration);
    this.overviewWindow.style.left = `${(this.viewStart / total) * 100}%`;
    this.overviewWindow.style.width = `${((this.viewEnd - this.viewStart) / total) * 100}%`;
    this.overviewWindow.hidden = this.viewStart <= 0 && this.viewEnd >= this.trace.duration;
  }

  /** Drag across `element` to zoom to that part of the range `rangeOf()` maps its width to. */
  brushable(element, brush, rangeOf) {
    brush.hidden = true;
    element.addEventListener('mousedown', (event) => {
      if (event.button !== 0) return;
      const box = element.getBoundingClientRect();
      const [from, to] = rangeOf();
      const at = (x) => Math.min(1, Math.max(0, (x - box.left) / box.width));
      const startX = at(event.clientX);
      const move = (e) => {
        const x = at(e.clientX);
        brush.hidden = false;
        brush.style.left = `${Math.min(startX, x) * 100}%`;
        brush.style.width = `${Math.abs(x - startX) * 100}%`;
      };
      const up = (e) => {
        window.removeEventListener('mousemove', move);
        window.removeEventListener('mouseup', up);
        brush.hidden = true;
        const x = at(e.clientX);
        if (Math.abs(x - startX) * box.width < 3) return;
        const a = Math.min(startX, x);
        const b = Math.max(startX, x);
        this.zoom(from + a * (to - from), from + b * (to - from));
      };
      window.addEventListener('mousemove', move);
      window.addEventListener('mouseup', up);
      event.preventDefault();
    });
  }

  zoom(start, end) {
    this.viewStart = Math.max(0, start);
    this.viewEnd = Math.max(this.viewStart + 1, Math.min(end, Math.max(1, this.trace.duration)));
    this.resetZoomButton.disabled = this.viewStart <= 0 && this.viewEnd >= this.trace.duration;
    this.placeOverviewWindow();
    this.renderRows();
  }

  toggleCritical() {
    this.showCritical = !this.showCritical;
    this.criticalButton.setAttribute('aria-pressed', String(this.showCritical));
    this.renderRows();
  }

  collapseAll() {
    this.collapsed = new Set(this.trace.spans.filter((span) => span.children.length && span.depth >= 1).map((span) => span.index));
    if (this.selected >= 0 && !this.isShown(this.selected)) this.selected = this.visibleAncestor(this.selected);
    this.refreshVisible();
  }

  expandAll() {
    this.collapsed.clear();
    this.refreshVisible();
  }

  toggle(index) {
    if (!this.trace.spans[index].children.length) return;
    if (this.collapsed.has(index)) this.collapsed.delete(index); else this.collapsed.add(index);
    this.refreshVisible();
  }

  isShown(index) {
    const { spans } = this.trace;
    for (let p = spans[index].parent; p >= 0; p = spans[p].parent) if (this.collapsed.has(p)) return false;
    return true;
  }

  visibleAncestor(index) {
    const { spans } = this.trace;
    let shown = index;
    for (let p = spans[index].parent; p >= 0; p = spans[p].parent) if (this.collapsed.has(p)) shown = p;
    return shown;
  }

  /** Where a span is among the visible rows (binary search: visible rows are in tree order). */
  rowOf(index) {
    const { visible } = this;
    let low = 0;
    let high = visible.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (visible[mid] === index) return mid;
      if (visible[mid] < index) low = mid + 1; else high = mid - 1;
    }
    return -1;
  }

  /** Expands the span's ancestors, scrolls it into view and selects it. */
  reveal(index) {
    const { spans } = this.trace;
    let changed = false;
    for (let p = spans[index].parent; p >= 0; p = spans[p].parent) {
      if (this.collapsed.delete(p)) changed = true;
    }
    if (changed) this.refreshVisible();
    this.select(index);
  }

  select(index) {
    this.selected = index;
    const at = this.rowOf(index);
    if (at >= 0) {
      const top = at * ROW;
      const { scrollTop, clientHeight } = this.viewport;
      if (top < scrollTop) this.viewport.scrollTop = top;
      else if (top + ROW > scrollTop + clientHeight) this.viewport.scrollTop = top + ROW - clientHeight;
    }
    this.showDetail(index);
    this.renderRows();
  }

  onRowClick(event) {
    const row = event.target.closest('.wf-row');
    if (!row) return;
    const index = Number(row.dataset.index);
    if (event.target.closest('[data-toggle]')) {
      this.toggle(index);
      return;
    }
    this.select(index);
    this.viewport.focus({ preventScroll: true });
  }

  onKey(event) {
    const { spans } = this.trace;
    const at = this.selected >= 0 ? this.rowOf(this.selected) : -1;
    const move = (to) => {
      const clamped = Math.max(0, Math.min(this.visible.length - 1, to));
      if (this.visible.length) this.select(this.visible[clamped]);
    };
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW) - 1);
    switch (event.key) {
      case 'ArrowDown': case 'j': move(at + 1); break;
      case 'ArrowUp': case 'k': move(at < 0 ? 0 : at - 1); break;
      case 'PageDown': move(at + page); break;
      case 'PageUp': move(at - page); break;
      case 'Home': move(0); break;
      case 'End': move(this.visible.length - 1); break;
      case 'ArrowRight': case 'l':
        if (this.selected < 0) { move(0); break; }
        if (this.collapsed.has(this.selected)) this.toggle(this.selected);
        else if (spans[this.selected].children.length) this.select(spans[this.selected].children[0]);
        break;
      case 'ArrowLeft': case 'h':
        if (this.selected < 0) break;
        if (spans[this.selected].children.length && !this.collapsed.has(this.selected)) this.toggle(this.selected);
        else if (spans[this.selected].parent >= 0) this.select(spans[this.selected].parent);
        break;
      case 'Enter': case ' ':
        if (this.selected >= 0) this.toggle(this.selected);
        break;
      case 'z':
        if (this.selected >= 0) this.zoom(spans[this.selected].start, spans[this.selected].subtreeEnd);
        break;
      case '0': this.zoom(0, this.trace.duration); break;
      case 'c': this.toggleCritical(); break;
      case 'Escape':
        this.selected = -1;
        this.detail.hidden = true;
        this.renderRows();
        break;
      default: return;
    }
    event.preventDefault();
  }

  scheduleSearch() {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => this.search(), this.trace.spans.length > 20_000 ? 250 : 80);
  }

  search() {
    const needle = this.searchInput.value.trim().toLowerCase();
    this.matches = needle ? this.trace.spans.filter((span) => spanMatches(span, needle)).map((span) => span.index) : [];
    this.matchSet = new Set(this.matches);
    this.matchAt = -1;
    this.matchCount.textContent = needle ? `${format.count(this.matches.length)} matching spans` : '';
    this.renderRows();
  }

  onSearchKey(event) {
    if (event.key === 'Enter') {
      event.preventDefault();
      clearTimeout(this.searchTimer);
      if (this.searchInput.value.trim().toLowerCase() && !this.matches.length) this.search();
      this.nextMatch(event.shiftKey ? -1 : 1);
    } else if (event.key === 'Escape') {
      this.searchInput.value = '';
      this.search();
      this.viewport.focus({ preventScroll: true });
    }
  }

  nextMatch(step) {
    if (!this.matches.length) return;
    this.matchAt = (this.matchAt + step + this.matches.length) % this.matches.length;
    this.matchCount.textContent = `${this.matchAt + 1} of ${format.count(this.matches.length)} matching spans`;
    this.reveal(this.matches[this.matchAt]);
  }

  download() {
    const otlp = { resourceSpans: this.data.trace?.resourceSpans || [] };
    download(`trace-${this.traceId}.json`, JSON.stringify(otlp), 'application/json');
  }

  showDetail(index) {
    const span = this.trace.spans[index];
    const table = (pairs) => h('table', {}, h('tbody', {}, pairs.map(([key, value]) =>
      h('tr', {}, h('td', {}, key), h('td', { class: 'mono' }, valueText(value))))));
    const section = (title, content) => h('section', {}, h('h4', {}, title), content);
    const onPath = this.critical.get(index);
    const onPathTime = onPath ? onPath.reduce((sum, [a, b]) => sum + b - a, 0) : 0;
    const parent = span.parent >= 0 ? this.trace.spans[span.parent] : null;
    const facts = [
      ['service', span.service],
      ['duration', format.duration(span.duration)],
      ['start', `${format.duration(span.start)} after the trace began`],
      ['kind', span.kind],
      ['status', span.status],
      ['span ID', span.id],
      ['parent', span.parentId || '(root)'],
    ];
    if (span.traceState) facts.push(['trace state', span.traceState]);
    if (onPath) facts.push(['on the critical path', format.duration(onPathTime)]);
    this.detail.hidden = false;
    clear(this.detail).append(h('div', { class: 'detail-body' },
      h('div', { class: 'toolbar' }, h('span', { class: 'grow' }),
        h('button', { type: 'button', title: 'Close (Esc)', onclick: () => { this.detail.hidden = true; this.selected = -1; this.renderRows(); } }, '✕')),
      h('h3', {}, span.name),
      span.error ? notice('error', `Error${span.statusMessage ? `: ${span.statusMessage}` : ''}`) : null,
      !span.error && span.statusMessage ? h('p', {}, `Status message: ${span.statusMessage}`) : null,
      table(facts),
      parent ? h('p', {}, 'Parent: ', h('a', { href: '#', onclick: (e) => { e.preventDefault(); this.reveal(parent.index); } }, `${parent.service}: ${parent.name}`)) : null,
      section(`Span attributes (${span.attributes.length})`, span.attributes.length ? table(span.attributes) : h('p', { class: 'dim' }, 'none')),
      section(`Resource attributes (${span.resource.length})`, table(span.resource)),
      section('Instrumentation scope', table([['name', span.scope.name], ['version', span.scope.version], ...span.scope.attributes])),
      span.events.length ? section(`Events (${span.events.length})`, h('ol', { class: 'events' }, span.events.map((event) => h('li', {},
        h('div', {}, h('b', {}, event.name), ' ', h('span', { class: 'dim' },
          `+${format.duration(event.time - span.start)} · ${format.timestamp(Number((this.trace.start + BigInt(Math.round(event.time))) / 1_000_000n))}`)),
        event.attributes.length ? table(event.attributes) : null)))) : null,
      span.links.length ? section(`Links (${span.links.length})`, h('ol', { class: 'links' }, span.links.map((link) => h('li', {},
        h('a', { href: `/trace/${link.traceId}?span=${link.spanId}`, class: 'mono' }, `${link.traceId} / ${link.spanId}`),
        link.attributes.length ? table(link.attributes) : null)))) : null,
    ));
  }
}
