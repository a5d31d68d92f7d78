// TraceQL as the search box sees it while someone types: which part of a condition the cursor is in, what
// may come next there, and the text the builder writes. Pure functions (no DOM, no requests), so the
// autocomplete's decisions can be tested on their own; the server's parser stays the judge of validity.

/** The comparison operators, in the order the list offers them. */
export const COMPARISONS = ['=', '!=', '>', '>=', '<', '<=', '=~', '!~'];

/** Intrinsics offered first, in this order; the server's list adds the rest. */
export const COMMON_INTRINSICS = [
  'name', 'status', 'duration', 'kind', 'rootServiceName', 'rootName', 'traceDuration', 'statusMessage',
];

/** Scopes with attribute names; `.` is "span or resource". */
export const ATTRIBUTE_SCOPES = ['span', 'resource', 'event', 'link', 'instrumentation'];

// Symbols longest first, so `>=` is not read as `>` then `=`. The server's lexer has the same set.
const SYMBOLS = [
  '!>>', '!<<', '&>>', '&<<', '&&', '||', '!=', '=~', '!~', '>=', '<=', '>>', '<<', '!>', '!<', '&>', '&<', '&~',
  '=', '>', '<', '~', '!', '+', '-', '*', '/', '%', '^',
];
const ATTRIBUTE_STOP = '{}()=~!<>&|^,"';
const SCOPE_WORDS = new Set([...ATTRIBUTE_SCOPES, 'parent']);
const COLON_SCOPES = new Set(['span', 'trace', 'event', 'link', 'instrumentation']);
const LITERAL_WORDS = new Set(['true', 'false', 'nil']);

/** Whether `c` may appear in an unquoted attribute name (anything but space and TraceQL's delimiters). */
export function isAttributeChar(c) {
  return c !== undefined && !/\s/.test(c) && !ATTRIBUTE_STOP.includes(c);
}

const isWordStart = (c) => c !== undefined && /[A-Za-z_]/.test(c);
const isWordChar = (c) => c !== undefined && /[A-Za-z0-9_]/.test(c);

/**
 * Splits `text` into tokens without ever failing: an unterminated string or an unknown character is a
 * token too, because the text is usually half-typed. Each token has `type`, `text`, `start`, `end`;
 * attributes also `scope` and `name` (unquoted), strings `value` and `closed`.
 * Types: open close lparen rparen comma and or pipe op symbol string attribute word number other.
 */
export function tokenize(text) {
  const tokens = [];
  let i = 0;
  const push = (type, start, extra = {}) => tokens.push({ type, text: text.slice(start, i), start, end: i, ...extra });
  while (i < text.length) {
    const c = text[i];
    const start = i;
    if (/\s/.test(c)) { i += 1; continue; }
    const single = { '{': 'open', '}': 'close', '(': 'lparen', ')': 'rparen', ',': 'comma' }[c];
    if (single) { i += 1; push(single, start); continue; }
    if (c === '"' || c === '`') {
      const [value, closed] = readString(text, i);
      i = closed.end;
      push('string', start, { value, closed: closed.ok });
      continue;
    }
    if (c === '.') {
      i += 1;
      const name = readAttributeName(text, i);
      i = name.end;
      push('attribute', start, { scope: '', name: name.value, nameStart: start + 1 });
      continue;
    }
    if (/[0-9]/.test(c)) {
      while (i < text.length && /[0-9A-Za-zµμ.]/.test(text[i])) i += 1;
      push('number', start);
      continue;
    }
    if (isWordStart(c)) {
      while (isWordChar(text[i])) i += 1;
      const word = text.slice(start, i);
      if (text[i] === '.' && SCOPE_WORDS.has(word)) {
        i += 1;
        let scope = word;
        if (word === 'parent') {
          // `parent.x` reads the parent's span or resource attribute: its names are those of `.x`.
          const inner = ['resource.', 'span.'].find((prefix) => text.startsWith(prefix, i));
          if (inner) i += inner.length;
          scope = inner ? inner.slice(0, -1) : '';
        }
        const nameStart = i;
        const name = readAttributeName(text, i);
        i = name.end;
        push('attribute', start, { scope, name: name.value, nameStart });
        continue;
      }
      if (text[i] === ':' && COLON_SCOPES.has(word)) {
        i += 1;
        while (isWordChar(text[i])) i += 1;
      }
      push('word', start);
      continue;
    }
    const symbol = SYMBOLS.find((s) => text.startsWith(s, i));
    if (symbol) {
      i += symbol.length;
      const type = symbol === '&&' ? 'and' : symbol === '||' ? 'or' : COMPARISONS.includes(symbol) ? 'op' : 'symbol';
      push(type, start);
      continue;
    }
    if (c === '|') { i += 1; push('pipe', start); continue; }
    i += 1;
    push('other', start);
  }
  return tokens;
}

/** A string literal from its opening quote: its value and where it ends (past the closing quote). */
function readString(text, from) {
  const quote = text[from];
  let value = '';
  let i = from + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === quote) return [value, { ok: true, end: i + 1 }];
    if (c === '\\' && quote === '"' && i + 1 < text.length) {
      const next = text[i + 1];
      value += { n: '\n', t: '\t', r: '\r', 0: '\0' }[next] ?? next;
      i += 2;
      continue;
    }
    value += c;
    i += 1;
  }
  return [value, { ok: false, end: i }];
}

/** An attribute name after its scope: unquoted runs and "quoted" parts, joined. */
function readAttributeName(text, from) {
  let value = '';
  let i = from;
  while (i < text.length) {
    if (text[i] === '"') {
      const [part, closed] = readString(text, i);
      value += part;
      i = closed.end;
    } else if (isAttributeChar(text[i])) {
      value += text[i];
      i += 1;
    } else {
      break;
    }
  }
  return { value, end: i };
}

/** Whether a token names something a condition compares: an attribute, or an intrinsic such as `name`. */
function isField(token) {
  return token?.type === 'attribute' || (token?.type === 'word' && !LITERAL_WORDS.has(token.text));
}

/** Tokens after which a new condition starts. */
const CONDITION_START = new Set(['open', 'and', 'or', 'lparen']);

/** The tag name the tag endpoints take for a field token: `span.http.route`, `.x`, `name`, `span:kind`. */
export function fieldTag(token) {
  if (token.type === 'attribute') return `${token.scope}.${token.name}`;
  return token.text;
}

/**
 * What the cursor at `cursor` in `text` is completing. Returns `{kind, from, to, prefix, …}` where
 * `[from, to)` is the text a chosen suggestion replaces and `prefix` what is typed of it so far:
 *  - `field`: a new condition's left side (scopes, intrinsics); `attribute` (with `scope`: span,
 *    resource, … or '' for `.x`): a name after its scope;
 *  - `operator` (with `field`): after a complete field;
 *  - `value` (with `field`, `tag`, `operator`, `quoted`): after an operator;
 *  - `combinator`: after a complete condition (`&&`, `||`, `}`);
 *  - `none`: outside a spanset, or nothing to offer.
 */
export function completionContext(text, cursor) {
  const tokens = tokenize(text.slice(0, cursor));
  const depth = tokens.reduce((d, t) => d + (t.type === 'open' ? 1 : t.type === 'close' ? -1 : 0), 0);
  const none = { kind: 'none', from: cursor, to: cursor, prefix: '' };
  if (depth <= 0) return none;
  const last = tokens[tokens.length - 1];
  // The token under the cursor is still being typed when nothing separates it from the cursor.
  const typing = (last?.end === cursor && ['word', 'attribute', 'number', 'op', 'symbol', 'other'].includes(last.type))
    || (last?.type === 'string' && !last.closed)
    ? last : null;
  const before = typing ? tokens.slice(0, -1) : tokens;
  const previous = before[before.length - 1];
  const beforePrevious = before[before.length - 2];
  const end = extendToken(text, cursor, typing);

  if (!previous || CONDITION_START.has(previous.type) || previous.type === 'symbol' && previous.text === '!') {
    if (!typing) return { kind: 'field', from: cursor, to: end, prefix: '' };
    if (typing.type === 'attribute') {
      return {
        kind: 'attribute', scope: typing.scope, from: typing.nameStart, to: end,
        prefix: text.slice(typing.nameStart, cursor).replace(/^"/, ''),
      };
    }
    if (typing.type === 'word') return { kind: 'field', from: typing.start, to: end, prefix: typing.text };
    return none;
  }
  if (isField(previous) && CONDITION_START.has(beforePrevious?.type ?? 'open')) {
    if (!typing) return { kind: 'operator', field: fieldTag(previous), from: cursor, to: cursor, prefix: '' };
    if (['op', 'symbol'].includes(typing.type)) {
      return { kind: 'operator', field: fieldTag(previous), from: typing.start, to: end, prefix: typing.text };
    }
    return none;
  }
  if (previous.type === 'op' && isField(beforePrevious)) {
    const conditionStart = before[before.length - 3];
    const context = {
      kind: 'value', field: fieldTag(beforePrevious), tag: fieldTag(beforePrevious), operator: previous.text,
      from: typing ? typing.start : cursor, to: end,
      prefix: typing ? (typing.type === 'string' ? typing.value : typing.text) : '',
      quoted: typing?.type === 'string',
      narrowing: narrowingQuery(text, conditionStart),
    };
    return typing && !['string', 'word', 'number'].includes(typing.type) ? none : context;
  }
  const isValue = ['string', 'number', 'word'].includes(previous.type) && beforePrevious?.type === 'op';
  if (isValue && !typing) return { kind: 'combinator', from: cursor, to: cursor, prefix: '' };
  return none;
}

/** Where the token being completed ends, past the cursor: a suggestion replaces all of it. */
function extendToken(text, cursor, typing) {
  let end = cursor;
  if (typing?.type === 'string') {
    const [, closed] = readString(text, typing.start);
    return closed.end;
  }
  if (typing?.type === 'attribute') while (isAttributeChar(text[end])) end += 1;
  else if (typing?.type === 'word' || typing?.type === 'number') while (isWordChar(text[end]) || text[end] === ':') end += 1;
  else if (typing?.type === 'op' || typing?.type === 'symbol') while (end < text.length && '=~!<>'.includes(text[end])) end += 1;
  return end;
}

/**
 * The query that narrows a value list: the conditions before the one being typed, when they are all
 * joined by `&&` in one spanset (`{a = 1 && b = ` narrows by `{a = 1}`); '' when nothing narrows safely.
 */
export function narrowingQuery(text, conditionStart) {
  if (!conditionStart || conditionStart.type !== 'and') return '';
  const head = text.slice(0, conditionStart.start);
  const tokens = tokenize(head);
  const simple = tokens[0]?.type === 'open'
    && tokens.slice(1).every((t) => !['open', 'close', 'or', 'pipe', 'lparen', 'rparen'].includes(t.type));
  return simple ? `${head.trim()} }` : '';
}

/**
 * The suggestions for a context, ranked by how well they match what is typed. `source` holds what the
 * server said: `scopes` ({span: [...], resource: [...], intrinsic: [...]}) and `values` (the typed values
 * of `context.tag`). A suggestion is `{label, insert, kind, detail?, reopen?}`.
 */
export function suggestions(context, source = {}) {
  const scopes = source.scopes || {};
  let items = [];
  if (context.kind === 'field') {
    const listed = ['span', 'resource', ...ATTRIBUTE_SCOPES.filter((s) => (scopes[s] || []).length)];
    const unique = [...new Set(listed)];
    items = [
      ...unique.map((s) => ({ label: `${s}.`, insert: `${s}.`, kind: 'scope', reopen: true })),
      { label: '.', insert: '.', kind: 'span or resource', reopen: true },
      ...intrinsics(scopes.intrinsic).map((name) => ({ label: name, insert: name, kind: 'intrinsic' })),
    ];
  } else if (context.kind === 'attribute') {
    const names = context.scope
      ? scopes[context.scope] || []
      : [...new Set([...(scopes.span || []), ...(scopes.resource || [])])].sort();
    items = names.map((name) => ({ label: name, insert: attributeName(name), kind: context.scope || 'attribute' }));
  } else if (context.kind === 'operator') {
    items = COMPARISONS.map((op) => ({ label: op, insert: `${op} `, kind: OPERATOR_NAMES[op], reopen: true }));
  } else if (context.kind === 'value') {
    const regex = context.operator === '=~' || context.operator === '!~';
    items = (source.values || []).map(({ type, value }) => ({
      label: value, insert: regex ? quote(escapeRegex(value)) : literal(value, type), kind: type,
    }));
  } else if (context.kind === 'combinator') {
    items = [
      { label: '&&', insert: '&& ', kind: 'and', reopen: true },
      { label: '||', insert: '|| ', kind: 'or', reopen: true },
      { label: '}', insert: '}', kind: 'end the spanset' },
    ];
  }
  return rank(items, context.prefix, context.kind === 'operator' || context.kind === 'combinator');
}

const OPERATOR_NAMES = {
  '=': 'equals', '!=': 'not equal', '>': 'greater', '>=': 'at least', '<': 'less', '<=': 'at most',
  '=~': 'matches regex', '!~': 'does not match',
};

/** Intrinsics: the common ones first, then whatever else the server lists. */
function intrinsics(listed = []) {
  const rest = listed.filter((name) => !COMMON_INTRINSICS.includes(name)).sort();
  return [...COMMON_INTRINSICS, ...rest];
}

/** Prefix matches first, then other matches containing the text; operators match by prefix only. */
function rank(items, prefix, prefixOnly) {
  const typed = (prefix || '').toLowerCase();
  if (!typed) return items;
  const starts = [];
  const contains = [];
  for (const item of items) {
    const label = item.label.toLowerCase();
    if (label.startsWith(typed)) starts.push(item);
    else if (!prefixOnly && label.includes(typed)) contains.push(item);
  }
  // A list that only repeats what is typed in full offers nothing.
  const all = [...starts, ...contains];
  return all.length === 1 && all[0].label === prefix && !all[0].reopen ? [] : all;
}

/** Replaces `[context.from, context.to)` by the suggestion: the new text and where the cursor goes. */
export function applySuggestion(text, context, suggestion) {
  const next = text.slice(0, context.from) + suggestion.insert + text.slice(context.to);
  return { text: next, cursor: context.from + suggestion.insert.length };
}

/** A TraceQL string literal. */
export function quote(value) {
  const escaped = String(value).replace(/[\\"\n\t\r]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\t': '\\t', '\r': '\\r' }[c]));
  return `"${escaped}"`;
}

function escapeRegex(value) {
  return String(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A value as TraceQL writes it for its type: keywords, numbers, booleans and durations bare, text quoted. */
export function literal(value, type) {
  if (type === 'keyword' || type === 'duration') return String(value);
  if ((type === 'int' || type === 'float') && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(String(value))) return String(value);
  if (type === 'bool' && (value === 'true' || value === 'false')) return value;
  return quote(value);
}

/** An attribute name as it follows its scope: bare when every character may stand bare, else quoted. */
export function attributeName(name) {
  return name !== '' && [...name].every(isAttributeChar) ? name : quote(name);
}

/** `span.x`, `resource.x` or `.x` for a scope ('' = span or resource) and a name. */
export function attributeRef(scope, name) {
  return `${scope || ''}.${attributeName(name)}`;
}

const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/** Whether `text` is a TraceQL duration (`100ms`, `1.5s`, `1m30s`). */
export function isDuration(text) {
  return DURATION.test(String(text).trim());
}

/**
 * The TraceQL a builder state means: every condition must hold for one span.
 * `{service, spanName, status, minDuration, maxDuration, filters: [{scope, name, operator, value, type}]}`;
 * empty fields are left out, and nothing at all is `{}`.
 */
export function builderQuery(state) {
  const conditions = [];
  if (state.service) conditions.push(`resource.service.name = ${quote(state.service)}`);
  if (state.spanName) conditions.push(`name = ${quote(state.spanName)}`);
  if (state.status) conditions.push(`status = ${state.status}`);
  if (state.minDuration?.trim()) conditions.push(`duration >= ${state.minDuration.trim()}`);
  if (state.maxDuration?.trim()) conditions.push(`duration <= ${state.maxDuration.trim()}`);
  for (const filter of state.filters || []) {
    if (!filter.name?.trim() || filter.value === undefined || filter.value === '') continue;
    const regex = filter.operator === '=~' || filter.operator === '!~';
    const value = regex ? quote(filter.value) : literal(filter.value, filter.type || guessType(filter.value, filter.operator));
    conditions.push(`${attributeRef(filter.scope, filter.name.trim())} ${filter.operator || '='} ${value}`);
  }
  return conditions.length ? `{${conditions.join(' && ')}}` : '{}';
}

/** A value's type when the server did not say: a number compared by order is a number; else text. */
function guessType(value, operator) {
  const numeric = /^-?\d+(\.\d+)?$/.test(value);
  return numeric && ['>', '>=', '<', '<='].includes(operator) ? (value.includes('.') ? 'float' : 'int') : 'string';
}

/** The position of a server's TraceQL error (`…: 1:8: message`) as {line, column}, 1-based; null if none. */
export function errorPosition(message) {
  const match = /(?:^|\s)(\d+):(\d+):\s/.exec(message || '');
  return match ? { line: Number(match[1]), column: Number(match[2]) } : null;
}
