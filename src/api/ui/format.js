// How numbers, times and services look everywhere on the page.

/** A duration in nanoseconds as a person reads it: 850ns, 12.3µs, 4.56ms, 1.23s, 2m 3s. */
export function duration(ns) {
  const value = Number(ns);
  if (!Number.isFinite(value)) return '';
  const abs = Math.abs(value);
  if (abs < 1e3) return `${Math.round(value)}ns`;
  if (abs < 1e6) return `${trim(value / 1e3)}µs`;
  if (abs < 1e9) return `${trim(value / 1e6)}ms`;
  if (abs < 60e9) return `${trim(value / 1e9)}s`;
  const minutes = Math.floor(value / 60e9);
  return `${minutes}m ${Math.round((value - minutes * 60e9) / 1e9)}s`;
}

function trim(value) {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** A point in time (milliseconds since the epoch) in the browser's zone, to the millisecond. */
export function timestamp(ms) {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** A count with thousands separators. */
export function count(n) {
  return Number(n).toLocaleString('en-US');
}

/** Bytes as KiB/MiB/GiB. */
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Parses a Go-style duration ("150ms", "1.5s", "2m", "300us") to nanoseconds; null when it is not one. */
export function parseDuration(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$/.exec(text || '');
  if (!match) return null;
  const scale = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[match[2]];
  return Math.round(Number(match[1]) * scale);
}

// Twenty colours far enough apart to tell services apart on both themes.
const PALETTE = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#8cd17d',
  '#499894', '#d37295', '#86bcb6', '#f1ce63', '#a0cbe8', '#ffbe7d', '#79706e', '#d4a6c8', '#b6992d', '#6b6ecf',
];

function hash(name) {
  let value = 2166136261;
  for (let i = 0; i < name.length; i += 1) value = Math.imul(value ^ name.charCodeAt(i), 16777619);
  return value >>> 0;
}

/**
 * A service's colour: the same name always gets the same colour, on every page and every load, so a person
 * learns them.
 */
export function serviceColor(name) {
  return PALETTE[hash(name) % PALETTE.length];
}

/**
 * Colours for the services shown together (one trace): each keeps its own colour unless an earlier name
 * (in sorted order) took it, then it takes the next free one, so no two of up to twenty services look
 * alike and the choice still depends only on the names.
 */
export function serviceColors(names) {
  const taken = new Set();
  const colors = new Map();
  for (const name of [...names].sort()) {
    let slot = hash(name) % PALETTE.length;
    for (let tries = 0; tries < PALETTE.length && taken.has(slot); tries += 1) slot = (slot + 1) % PALETTE.length;
    taken.add(slot);
    colors.set(name, PALETTE[slot]);
  }
  return colors;
}
