// A trace as the trace page needs it: the spans of an OTLP/JSON trace (what `/api/v2/traces/{id}` answers)
// flattened into one array in tree order, with depth, children, times relative to the trace's start, and
// the critical path. Pure functions of the data (no DOM), so they are cheap to test and to reason about.
//
// Times: OTLP/JSON carries nanoseconds as decimal strings, beyond what a double holds exactly; they are
// read as BigInt once and kept as numbers of nanoseconds since the trace's first span, exact for any trace
// shorter than about 104 days.

/** An OTLP/JSON AnyValue as a plain JS value (ints stay strings when a double could not hold them). */
export function anyValue(value) {
  if (!value || typeof value !== 'object') return null;
  if ('stringValue' in value) return value.stringValue;
  if ('boolValue' in value) return value.boolValue;
  if ('intValue' in value) {
    const n = Number(value.intValue);
    return Number.isSafeInteger(n) ? n : String(value.intValue);
  }
  if ('doubleValue' in value) return Number(value.doubleValue);
  if ('bytesValue' in value) return value.bytesValue;
  if ('arrayValue' in value) return (value.arrayValue.values || []).map(anyValue);
  if ('kvlistValue' in value) return attributes(value.kvlistValue.values);
  return null;
}

/** OTLP/JSON key-value list as `[[key, value], …]` in its order (keys may repeat in bad data; keep all). */
export function attributes(list) {
  return (list || []).map((kv) => [kv.key, anyValue(kv.value)]);
}

/** An attribute value as text for display and search. */
export function valueText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUSES = ['unset', 'ok', 'error'];

function kindOf(kind) {
  if (typeof kind === 'number') return KINDS[kind] || 'unspecified';
  if (typeof kind === 'string') return kind.replace(/^SPAN_KIND_/, '').toLowerCase() || 'unspecified';
  return 'unspecified';
}

function statusOf(status) {
  const code = status?.code;
  if (typeof code === 'number') return STATUSES[code] || 'unset';
  if (typeof code === 'string') return code.replace(/^STATUS_CODE_/, '').toLowerCase() || 'unset';
  return 'unset';
}

function nanos(text) {
  try { return BigInt(text || 0); } catch { return 0n; }
}

/**
 * Builds the model of an OTLP/JSON trace (`{resourceSpans: […]}`).
 *
 * Returns `{spans, roots, start, end, duration, services, errors, maxDepth}`, where `spans` is in tree
 * order (depth first, children by start time) and each span is `{index, id, parentId, parent (index or
 * -1), children (indices), depth, name, service, kind, start, end, duration, status, statusMessage,
 * attributes, resource, scope, events, links, traceState, error, orphan, descendants, subtreeEnd}`.
 * A span whose parent is not in the trace (it was not sent, or is still on its way) is a root marked
 * `orphan`, so it is shown, not lost.
 */
export function buildTrace(otlp) {
  const flat = [];
  let first = null;
  for (const rs of otlp?.resourceSpans || []) {
    const resource = attributes(rs.resource?.attributes);
    const serviceEntry = resource.find(([key]) => key === 'service.name');
    const service = serviceEntry ? valueText(serviceEntry[1]) : 'unknown service';
    for (const ss of rs.scopeSpans || []) {
      const scope = {
        name: ss.scope?.name || '', version: ss.scope?.version || '', attributes: attributes(ss.scope?.attributes),
      };
      for (const span of ss.spans || []) {
        const start = nanos(span.startTimeUnixNano);
        const end = nanos(span.endTimeUnixNano);
        if (first === null || start < first) first = start;
        flat.push({ raw: span, service, resource, scope, startBig: start, endBig: end < start ? start : end });
      }
    }
  }
  const base = first ?? 0n;
  const spans = flat.map((item) => {
    const span = item.raw;
    const start = Number(item.startBig - base);
    const end = Number(item.endBig - base);
    const status = statusOf(span.status);
    return {
      index: -1,
      id: span.spanId || '',
      parentId: span.parentSpanId || '',
      traceId: span.traceId || '',
      traceState: span.traceState || '',
      parent: -1,
      children: [],
      depth: 0,
      name: span.name || '',
      service: item.service,
      kind: kindOf(span.kind),
      start,
      end,
      duration: end - start,
      status,
      statusMessage: span.status?.message || '',
      error: status === 'error',
      attributes: attributes(span.attributes),
      resource: item.resource,
      scope: item.scope,
      events: (span.events || []).map((event) => ({
        time: Number(nanos(event.timeUnixNano) - base),
        name: event.name || '',
        attributes: attributes(event.attributes),
      })),
      links: (span.links || []).map((link) => ({
        traceId: link.traceId || '', spanId: link.spanId || '', traceState: link.traceState || '',
        attributes: attributes(link.attributes),
      })),
      orphan: false,
      descendants: 0,
      subtreeEnd: end,
    };
  });
  return arrange(spans, base);
}

/** Links parents and children, orders the spans depth first, and sums up what the page shows. */
function arrange(unordered, base) {
  const byId = new Map();
  for (const span of unordered) if (!byId.has(span.id)) byId.set(span.id, span);
  const childrenOf = new Map();
  const roots = [];
  for (const span of unordered) {
    const parent = span.parentId && span.parentId !== span.id ? byId.get(span.parentId) : undefined;
    if (parent) {
      if (!childrenOf.has(parent)) childrenOf.set(parent, []);
      childrenOf.get(parent).push(span);
    } else {
      span.orphan = Boolean(span.parentId);
      roots.push(span);
    }
  }
  // A cycle (bad data: A's parent is B and B's is A) leaves spans unreachable from any root; they are
  // appended as roots below so that every span sent is shown.
  const byStart = (a, b) => a.start - b.start || a.end - b.end || (a.id < b.id ? -1 : 1);
  roots.sort(byStart);
  for (const list of childrenOf.values()) list.sort(byStart);
  const ordered = [];
  const placed = new Set();
  const visit = (root) => {
    const stack = [[root, 0, -1]];
    while (stack.length) {
      const [span, depth, parent] = stack.pop();
      if (placed.has(span)) continue;
      placed.add(span);
      span.index = ordered.length;
      span.depth = depth;
      span.parent = parent;
      ordered.push(span);
      const kids = childrenOf.get(span) || [];
      for (let i = kids.length - 1; i >= 0; i -= 1) stack.push([kids[i], depth + 1, span.index]);
    }
  };
  for (const root of roots) visit(root);
  for (const span of unordered) {
    if (!placed.has(span)) {
      span.orphan = true;
      roots.push(span);
      visit(span);
    }
  }
  // Children as indices, and each subtree's size and end (bottom-up: children come after parents).
  for (const span of ordered) if (span.parent >= 0) ordered[span.parent].children.push(span.index);
  for (let i = ordered.length - 1; i >= 0; i -= 1) {
    const span = ordered[i];
    if (span.parent >= 0) {
      const parent = ordered[span.parent];
      parent.descendants += span.descendants + 1;
      if (span.subtreeEnd > parent.subtreeEnd) parent.subtreeEnd = span.subtreeEnd;
    }
  }
  let end = 0;
  let errors = 0;
  let maxDepth = 0;
  const services = new Map();
  for (const span of ordered) {
    if (span.end > end) end = span.end;
    if (span.error) errors += 1;
    if (span.depth > maxDepth) maxDepth = span.depth;
    services.set(span.service, (services.get(span.service) || 0) + 1);
  }
  return {
    spans: ordered,
    roots: roots.map((span) => span.index),
    start: base,
    end,
    duration: end,
    services,
    errors,
    maxDepth,
  };
}

/**
 * The critical path: the chain of work that decided when the trace ended. Starting at the end of the
 * root span and walking back in time, the time belongs to whichever child was still running last (its own
 * critical path, recursively, clipped to its parent's window), and to the parent itself where no child
 * ran. Children that ran beside a later-ending sibling only overlapped it and are not on the path.
 *
 * Returns a Map from span index to its on-path intervals `[[from, to], …]` (trace-relative ns). The root
 * is the trace's longest span without a parent in the trace, which for a well-formed trace is its root.
 */
export function criticalPath(trace) {
  const { spans } = trace;
  const path = new Map();
  if (!spans.length) return path;
  let root = trace.roots[0];
  for (const index of trace.roots) {
    const candidate = spans[index];
    const best = spans[root];
    if (candidate.orphan !== best.orphan ? !candidate.orphan : candidate.duration > best.duration) root = index;
  }
  const add = (index, from, to) => {
    if (to <= from) return;
    if (!path.has(index)) path.set(index, []);
    path.get(index).push([from, to]);
  };
  // Iterative, not recursive: a 100,000-span chain must not overflow the stack.
  const work = [[root, spans[root].end]];
  while (work.length) {
    const [index, windowEnd] = work.pop();
    const span = spans[index];
    let cursor = Math.min(span.end, windowEnd);
    if (!path.has(index)) path.set(index, []);
    const kids = span.children.map((i) => spans[i]).sort((a, b) => b.end - a.end || b.start - a.start);
    for (const child of kids) {
      if (cursor <= span.start) break;
      // A child that started after the cursor ran beside later work; one that ended before its parent began
      // (clock skew) took none of the parent's time.
      if (child.start >= cursor || child.end <= span.start) continue;
      const childEnd = Math.min(child.end, cursor);
      add(index, childEnd, cursor);
      work.push([child.index, childEnd]);
      cursor = Math.max(child.start, span.start);
    }
    add(index, span.start, cursor);
  }
  for (const intervals of path.values()) intervals.sort((a, b) => a[0] - b[0]);
  return path;
}

/** Whether the span's name, service, IDs or any attribute key or value contains `needle` (lowercase). */
export function spanMatches(span, needle) {
  if (!needle) return false;
  const has = (text) => String(text).toLowerCase().includes(needle);
  if (has(span.name) || has(span.service) || has(span.id) || has(span.statusMessage)) return true;
  for (const list of [span.attributes, span.resource]) {
    for (const [key, value] of list) if (has(key) || has(valueText(value))) return true;
  }
  return span.events.some((event) => has(event.name));
}
