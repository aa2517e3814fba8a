// api: the one way the dashboards talk to the REST API. The access token is
// the HttpOnly cookie `ates_token` set by login; every mutation sends
// X-Requested-With: ates. The refresh token lives in this tab's
// sessionStorage: on a 401 the token pair is refreshed once (one refresh at
// a time, since a refresh token is single use) and the request retried;
// when that fails the page goes back to the login.

import { waitText } from './format.js';

const REFRESH_KEY = 'ates.refresh_token';
// Until when (ms since the epoch) the access cookie may still be valid: it is
// HttpOnly, so scripts cannot see it; this lets the login page skip asking
// /api/auth/me (and a 401 in the console) when there is surely no session.
const SESSION_KEY = 'ates.session_until';
const AUTH_PATHS = ['/api/auth/login', '/api/auth/refresh', '/api/auth/logout'];

const STATUS_CODES = {
  400: 'validation', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed',
  409: 'conflict', 413: 'too_large', 422: 'validation', 429: 'too_many_requests', 500: 'internal',
  502: 'unavailable', 503: 'unavailable', 504: 'unavailable',
};

export class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = extra.retryAfter || null;
  }

  /* The server's message as a sentence a person reads. */
  readable() {
    let m = this.message || 'Something went wrong.';
    m = m.charAt(0).toUpperCase() + m.slice(1);
    if (!/[.!?]$/.test(m)) m += '.';
    if (this.code === 'too_many_requests') {
      // the server's text may name the wait already ("try again in 898 s"): say it once, in words
      const named = /\b(\d+) ?s(?:ec(?:ond)?s?)?\b/;
      if (named.test(m)) m = m.replace(named, (_, n) => waitText(n));
      else if (this.retryAfter && /^\d+$/.test(this.retryAfter)) m += ` Try again in ${waitText(this.retryAfter)}.`;
    }
    return m;
  }
}

/* Remember how long the access cookie lives (expires_in: its Max-Age). */
function noteSession(expiresIn) {
  try {
    if (expiresIn) localStorage.setItem(SESSION_KEY, String(Date.now() + Number(expiresIn) * 1000));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    /* storage may be disabled: the login page then always asks */
  }
}

/* false when no access cookie of this browser can still be valid (none was
 * set, it has expired, or the session was ended here); true otherwise,
 * also when that cannot be told. */
export function maybeSignedIn() {
  try {
    if (refreshToken()) return true;
    const until = Number(localStorage.getItem(SESSION_KEY));
    return until > Date.now();
  } catch {
    return true;
  }
}

export function forgetSession() {
  noteSession(null);
}

export function refreshToken() {
  try {
    return sessionStorage.getItem(REFRESH_KEY);
  } catch {
    return null;
  }
}

export function setRefreshToken(token) {
  try {
    if (token) sessionStorage.setItem(REFRESH_KEY, token);
    else sessionStorage.removeItem(REFRESH_KEY);
  } catch {
    /* storage may be disabled: the session then lasts as long as the cookie */
  }
}

async function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Requested-With'] = 'ates';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the aTES server. Check the connection and try again');
  }
}

async function parse(resp) {
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = undefined;
  }
  if (resp.ok) {
    if (data === undefined) throw new ApiError(resp.status, 'bad_response', 'The server sent an answer that is not JSON');
    return data;
  }
  const err = data && typeof data === 'object' ? data.error : null;
  const code = (err && typeof err.code === 'string' && err.code) || STATUS_CODES[resp.status] || 'error';
  const message = (err && typeof err.message === 'string' && err.message)
    || `The server answered ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''}`;
  throw new ApiError(resp.status, code, message, { retryAfter: resp.headers.get('Retry-After') });
}

let refreshing = null;

/* Trade the refresh token for a new pair (the cookie is set by the answer).
 * true on success; false when there is no usable refresh token. */
export function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = refreshToken();
      if (!token) return false;
      const resp = await send('POST', '/api/auth/refresh', { refresh_token: token });
      if (resp.status === 401 || resp.status === 403 || resp.status === 422) {
        setRefreshToken(null);
        return false;
      }
      const data = await parse(resp);
      setRefreshToken(data.refresh_token);
      noteSession(data.expires_in);
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/* Called when the session cannot be renewed; pages set it (see shell.js). */
let onSessionLost = () => {
  const next = encodeURIComponent(location.pathname);
  location.replace(`/?expired=1&next=${next}`);
};
export function setSessionLost(fn) {
  onSessionLost = fn;
}

export async function api(method, path, body) {
  let resp = await send(method, path, body);
  if (resp.status === 401 && !AUTH_PATHS.includes(path)) {
    if (await refreshSession()) {
      resp = await send(method, path, body);
    }
    if (resp.status === 401) {
      noteSession(null);
      onSessionLost();
      throw new ApiError(401, 'unauthorized', 'Your session has ended; please sign in again');
    }
  }
  return parse(resp);
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);

/* "/api/x" + {a: 1, b: null} -> "/api/x?a=1" */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export async function login(email, password) {
  const data = await api('POST', '/api/auth/login', { email, password });
  setRefreshToken(data.refresh_token);
  noteSession(data.expires_in);
  return data;
}

export async function logout() {
  const token = refreshToken();
  setRefreshToken(null);
  noteSession(null);
  // The answer clears the cookie; without a refresh token there is nothing to revoke.
  if (token) await api('POST', '/api/auth/logout', { refresh_token: token });
  else await send('POST', '/api/auth/logout', { refresh_token: '-' }).catch(() => {});
}

/* true when the server has no route at all for `path` (its service is not
 * running here): 404 answered before any authentication. */
export function isMissingService(err) {
  return err && err.name === 'ApiError' && err.status === 404 && /no such resource/i.test(err.message);
}
