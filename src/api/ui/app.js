// The page's entry: the header bar (tenant, token) and the router that mounts one page at a time. Pages
// are modules exporting `mount(root, context)`, which may return a function that unmounts them.
//
// Context: `params` (path parameters), `query` (URLSearchParams of the URL), `navigate(path)` (a new
// history entry and a new page), `replaceQuery(params)` (the URL holds the page's state, no remount).

import { identity } from './api.js';
import * as search from './search.js';
import * as trace from './trace.js';
import * as sql from './sql.js';
import * as status from './status.js';

const routes = [
  { pattern: /^\/(?:search)?$/, page: search, name: 'search' },
  { pattern: /^\/trace\/([^/]+)$/, page: trace, name: 'trace', keys: ['traceId'] },
  { pattern: /^\/sql$/, page: sql, name: 'sql' },
  { pattern: /^\/status$/, page: status, name: 'status' },
];

let unmount = null;

function route() {
  const root = document.getElementById('page');
  if (typeof unmount === 'function') unmount();
  unmount = null;
  root.replaceChildren();
  const path = window.location.pathname;
  const found = routes.find((r) => r.pattern.test(path));
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('active', found?.name === link.dataset.page);
  }
  if (!found) {
    root.textContent = `No page at ${path}.`;
    return;
  }
  const match = found.pattern.exec(path);
  const params = {};
  (found.keys || []).forEach((key, i) => { params[key] = decodeURIComponent(match[i + 1]); });
  document.title = `spanlake · ${found.name}`;
  unmount = found.page.mount(root, {
    params,
    query: new URLSearchParams(window.location.search),
    navigate,
    replaceQuery,
  });
}

/** Opens `path` as a new page (a history entry, so Back returns). */
export function navigate(path) {
  window.history.pushState(null, '', path);
  route();
}

/** Writes the page's state into the URL without reloading the page, so the URL can be shared. */
function replaceQuery(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  const next = `${window.location.pathname}${text ? `?${text}` : ''}`;
  if (next !== `${window.location.pathname}${window.location.search}`) window.history.pushState(null, '', next);
}

function setUpIdentity() {
  const tenant = document.getElementById('tenant');
  const token = document.getElementById('token');
  const list = document.getElementById('tenants');
  const fill = () => list.replaceChildren(...identity.recentTenants.map((t) => new Option(t)));
  tenant.value = identity.tenant;
  token.value = identity.token;
  fill();
  // A new tenant or token changes every answer: show the page again with it.
  tenant.addEventListener('change', () => { identity.tenant = tenant.value; fill(); route(); });
  token.addEventListener('change', () => { identity.token = token.value; route(); });
  document.getElementById('identity').addEventListener('submit', (event) => event.preventDefault());
}

// Links marked data-nav (and any same-origin link to a page) open without a reload.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (link.target || link.hasAttribute('download')) return;
  const target = new URL(link.href, window.location.href);
  if (target.origin !== window.location.origin || target.pathname.startsWith('/api/') || target.pathname.startsWith('/ui/')) return;
  event.preventDefault();
  navigate(`${target.pathname}${target.search}`);
});

window.addEventListener('popstate', route);
setUpIdentity();
route();
