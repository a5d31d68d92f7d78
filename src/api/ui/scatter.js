// The search results as dots: when each trace started (x) against how long it took (y), coloured by its
// root service, errors ringed in red. Slow outliers and bursts of errors stand out at a glance, and a dot
// opens its trace. Plain SVG, drawn again whenever its box changes width.

import { h } from './dom.js';
import { timestamp } from './format.js';

const HEIGHT = 170;
const MARGIN = { top: 10, right: 16, bottom: 22, left: 56 };
// Durations spread over more than this factor are drawn on a log scale, or the fast ones sit on the axis.
const LOG_SPREAD = 20;
// More names than this make the legend taller than the chart; the table names every service anyway.
const LEGEND_SERVICES = 8;

/**
 * `points`: `[{time (ms since epoch), durationMs, service, color, error, title, id}]`. `onClick(point)` runs when a
 * dot is clicked. Returns an element that draws itself once it is in the page.
 */
export function scatter(points, { onClick } = {}) {
  const canvas = h('div', { class: 'scatter-canvas' });
  let width = 0;
  const observer = new ResizeObserver(() => {
    if (!canvas.isConnected) { observer.disconnect(); return; }
    if (canvas.clientWidth === width || canvas.clientWidth === 0) return;
    width = canvas.clientWidth;
    canvas.replaceChildren(draw(points, width, onClick));
  });
  observer.observe(canvas);
  return h('div', { class: 'scatter' }, legend(points), canvas);
}

/** Which colour is which root service, and what a red ring means. */
function legend(points) {
  const services = [...new Map(points.map((p) => [p.service, p.color]))].sort(([a], [b]) => a.localeCompare(b));
  const entries = services.slice(0, LEGEND_SERVICES).map(([service, color]) => {
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = color;
    return h('span', { class: 'legend-entry' }, swatch, service);
  });
  if (services.length > LEGEND_SERVICES) entries.push(h('span', { class: 'legend-entry' }, `+${services.length - LEGEND_SERVICES} more`));
  if (points.some((p) => p.error)) {
    entries.push(h('span', { class: 'legend-entry' }, h('span', { class: 'swatch error-ring' }), 'has errors'));
  }
  return h('div', { class: 'legend scatter-legend' }, entries);
}

function draw(points, width, onClick) {
  const plotWidth = Math.max(10, width - MARGIN.left - MARGIN.right);
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = timeScale(points.map((p) => p.time), plotWidth);
  const y = durationScale(points.map((p) => p.durationMs), plotHeight);
  const svg = h('svg:svg', {
    class: 'chart scatter-chart', width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`,
    role: 'img', 'aria-label': `${points.length} traces by start time and duration`,
  });
  const plot = h('svg:g', { transform: `translate(${MARGIN.left},${MARGIN.top})` });
  svg.append(plot);
  for (const tick of y.ticks) {
    const at = y(tick);
    plot.append(
      h('svg:line', { class: 'grid-line', x1: 0, x2: plotWidth, y1: at, y2: at }),
      h('svg:text', { x: -6, y: at, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, tickLabel(tick)),
    );
  }
  plot.append(h('svg:line', { class: 'axis-line', x1: 0, x2: plotWidth, y1: plotHeight, y2: plotHeight }));
  for (const tick of x.ticks) {
    const at = x(tick);
    plot.append(
      h('svg:line', { class: 'axis-line', x1: at, x2: at, y1: plotHeight, y2: plotHeight + 4 }),
      h('svg:text', { x: at, y: plotHeight + 16, 'text-anchor': 'middle' }, x.label(tick)),
    );
  }
  // Errors last, so a red ring is never hidden under a plain dot.
  const ordered = [...points].sort((a, b) => Number(a.error) - Number(b.error));
  for (const point of ordered) {
    const [cx, cy] = [x(point.time), y(point.durationMs)];
    const dot = h('svg:circle', {
      class: `point${point.error ? ' error' : ''}`, cx, cy, r: 4.5, dataset: { traceId: point.id },
      onclick: () => onClick?.(point),
    }, h('svg:title', {}, point.title));
    dot.style.fill = point.color;
    // The ring sits around the dot, so the service's colour stays readable on an error.
    if (point.error) plot.append(h('svg:circle', { class: 'error-ring', cx, cy, r: 7.5 }));
    plot.append(dot);
  }
  return svg;
}

/** A round duration (ms) as a short axis label: 500µs, 10ms, 2.5s. */
function tickLabel(ms) {
  const short = (n) => String(Number(n.toPrecision(3)));
  if (ms === 0) return '0';
  if (ms < 1) return `${short(ms * 1000)}µs`;
  if (ms < 1000) return `${short(ms)}ms`;
  return `${short(ms / 1000)}s`;
}

/** Start times to x: the points' own span (padded), with ticks at round clock times. */
function timeScale(times, plotWidth) {
  let min = Math.min(...times);
  let max = Math.max(...times);
  if (!Number.isFinite(min)) { min = Date.now() - 3600e3; max = Date.now(); }
  const pad = Math.max((max - min) * 0.04, 30e3);
  min -= pad;
  max += pad;
  const scale = (t) => ((t - min) / (max - min)) * plotWidth;
  const wanted = Math.max(2, Math.floor(plotWidth / 110));
  const step = TIME_STEPS.find((s) => (max - min) / s <= wanted) || TIME_STEPS[TIME_STEPS.length - 1];
  // Ticks fall on round local times: whole minutes, hours, days.
  const offset = new Date(min).getTimezoneOffset() * 60e3;
  scale.ticks = [];
  for (let t = Math.ceil((min - offset) / step) * step + offset; t <= max; t += step) scale.ticks.push(t);
  const spanDays = max - min > 36 * 3600e3;
  scale.label = (t) => {
    const text = timestamp(t);
    if (step < 60e3) return text.slice(11, 19);
    return spanDays ? text.slice(5, 16) : text.slice(11, 16);
  };
  return scale;
}

const TIME_STEPS = [1e3, 5e3, 10e3, 30e3, 60e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 3 * 3600e3,
  6 * 3600e3, 12 * 3600e3, 24 * 3600e3, 2 * 86400e3, 7 * 86400e3];

/** Durations (ms) to y: linear from zero, or log when they spread wide; ticks at round durations. */
function durationScale(values, plotHeight) {
  const positive = values.filter((v) => v > 0);
  const max = Math.max(1, ...values);
  const min = positive.length ? Math.min(...positive) : max;
  if (max / min > LOG_SPREAD) {
    const low = 10 ** Math.floor(Math.log10(min));
    const high = 10 ** Math.ceil(Math.log10(max));
    const scale = (v) => plotHeight - (Math.log10(Math.max(v, low) / low) / Math.log10(high / low)) * plotHeight;
    scale.ticks = [];
    for (let t = low; t <= high * 1.001; t *= 10) scale.ticks.push(t);
    return scale;
  }
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step) * step;
  const scale = (v) => plotHeight - (v / top) * plotHeight;
  scale.ticks = [];
  for (let t = 0; t <= top + step / 2; t += step) scale.ticks.push(t);
  return scale;
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
}
