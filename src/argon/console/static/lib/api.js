// The console's only way to the server: Neon's API v2 (and /api/v2/console for the few
// things Neon's API has no call for), with the signed-in API key as a Bearer token.

export const API_BASE = '/api/v2';
const KEY_STORAGE = 'argon.console.apiKey';

export function savedKey() { return sessionStorage.getItem(KEY_STORAGE); }
export function saveKey(key) { sessionStorage.setItem(KEY_STORAGE, key); }
export function forgetKey() { sessionStorage.removeItem(KEY_STORAGE); }

// An Error carrying the HTTP status and Neon's {code, message} body.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A request function bound to a key; onUnauthorized runs on any 401 (key revoked or
// wrong) before the error is thrown, so the shell can go back to the sign-in form.
export function makeApi(getKey, onUnauthorized = () => {}) {
  return async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${getKey() || ''}`, Accept: 'application/json' };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(API_BASE + path, init);
    } catch (e) {
      throw new ApiError(0, { code: 'NETWORK', message: `Argon did not answer: ${e.message}` });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { message: text }; }
    }
    if (resp.status === 401) onUnauthorized();
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  };
}

// Query string from an object, leaving out null/undefined values.
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Waits until the operations a mutation returned have settled, as Neon's clients do;
// a failed one throws with its error text.
export async function waitOperations(api, projectId, operations, timeoutMs = 120000) {
  const deadline = Date.now() + timeoutMs;
  for (const op of operations || []) {
    let status = op.status;
    while (!['finished', 'skipped', 'cancelled'].includes(status)) {
      if (status === 'failed' || status === 'error') {
        throw new ApiError(500, { code: 'OPERATION_FAILED', message: `${op.action} failed: ${op.error || status}` });
      }
      if (Date.now() > deadline) throw new ApiError(0, { code: 'TIMEOUT', message: `${op.action} still ${status}` });
      await new Promise((r) => setTimeout(r, 250));
      const got = await api('GET', `/projects/${projectId}/operations/${op.id}`);
      status = got.operation.status;
      op.error = got.operation.error;
    }
  }
}

// Every page of a cursor-paginated list (Argon's lists are capped, Neon's clients page).
export async function listAll(api, path, key, limit = 1000) {
  const out = [];
  let cursor = null;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const items = page[key] || [];
    out.push(...items);
    const next = page.pagination && (page.pagination.next || page.pagination.cursor);
    if (!next || items.length < limit || next === cursor) return out;
    cursor = next;
  }
}
