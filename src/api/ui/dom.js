// A small element builder: the page builds DOM nodes, never HTML strings, so span names and attribute
// values are always text, never markup.

// Properties that exist on elements but can only be set as attributes.
const READ_ONLY = new Set(['list', 'form']);

/**
 * `h('div', {class: 'x', onclick: f}, child, 'text', [more])`: attributes starting with `on` become
 * listeners, `dataset`/`style` objects are assigned, `null`/`false` children are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(element.style, value);
    } else if (key === 'class') {
      element.setAttribute('class', value);
    } else if (key in element && !READ_ONLY.has(key) && !element.namespaceURI?.endsWith('svg')) {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Removes every child of `element`. */
export function clear(element) {
  element.replaceChildren();
  return element;
}

/** Offers `text` as a file named `name` to download. */
export function download(name, text, type) {
  const blob = text instanceof Blob ? text : new Blob([text], { type });
  const link = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** A message box for errors (the server's own message) or notes. */
export function notice(kind, message) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}
