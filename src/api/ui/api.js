// The one way the page talks to the server: the public endpoints of the query port, with the tenant
// (X-Scope-OrgID) and the credentials (Authorization) the person chose in the header bar.

const TENANT_KEY = 'spanlake.tenant';
const TOKEN_KEY = 'spanlake.token';
const RECENT_TENANTS_KEY = 'spanlake.recentTenants';

/** The tenant and token the requests carry; kept in localStorage so a reload keeps them. */
export const identity = {
  get tenant() { return localStorage.getItem(TENANT_KEY) || ''; },
  set tenant(value) {
    const tenant = value.trim();
    if (tenant) {
      localStorage.setItem(TENANT_KEY, tenant);
      const recent = [tenant, ...identity.recentTenants.filter((t) => t !== tenant)].slice(0, 12);
      localStorage.setItem(RECENT_TENANTS_KEY, JSON.stringify(recent));
    } else {
      localStorage.removeItem(TENANT_KEY);
    }
  },
  get recentTenants() {
    try { return JSON.parse(localStorage.getItem(RECENT_TENANTS_KEY) || '[]'); } catch { return []; }
  },
  // The token lives for the browser session only: a password should not outlast the tab.
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A refusal or failure from the server, carrying its HTTP status and the server's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Request headers for the chosen tenant and credentials. A token with a colon is `user:password`. */
export function headers(extra = {}) {
  const out = { ...extra };
  if (identity.tenant) out['X-Scope-OrgID'] = identity.tenant;
  const token = identity.token;
  if (token) {
    out.Authorization = token.includes(':') && !token.startsWith('Bearer ')
      ? `Basic ${btoa(token)}`
      : `Bearer ${token.replace(/^Bearer /, '')}`;
  }
  return out;
}

/** `path?params` with empty values left out. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Fetches with the identity's headers; a non-2xx answer becomes an ApiError with the server's message. */
export async function request(path, { params, method = 'GET', body, accept, contentType, signal } = {}) {
  const extra = {};
  if (accept) extra.Accept = accept;
  if (contentType) extra['Content-Type'] = contentType;
  let response;
  try {
    response = await fetch(url(path, params), { method, body, signal, headers: headers(extra) });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, `cannot reach the server: ${error.message}`);
  }
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

/** GET a JSON endpoint. */
export async function getJSON(path, params, signal) {
  const response = await request(path, { params, signal, accept: 'application/json' });
  return response.json();
}

/** The server's message of a failed answer: `{"error": …}` bodies, else the text. */
async function errorMessage(response) {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === 'string') return parsed.error;
    if (parsed && typeof parsed.message === 'string') return parsed.message;
  } catch { /* not JSON */ }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/** Runs SQL; `format` is one of the server's result formats (json, ndjson, csv, arrow). */
export function sql(query, format, signal) {
  return request('/api/sql', {
    method: 'POST', params: { format }, body: query, contentType: 'application/sql', signal,
  });
}
