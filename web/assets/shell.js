// shell: what every dashboard shares — who is signed in (GET /api/auth/me,
// refreshed silently when needed), the header with the account, its role,
// the dashboards that role may open and logout, and a last-resort error
// banner so a failure is never a blank page.

import { ApiError, get, logout } from './api.js';
import { $, errorText, fill, h, say } from './dom.js';

export const PAGES = [
  { path: '/tracker', label: 'Tasks', roles: ['admin', 'manager', 'accountant', 'popug'] },
  { path: '/accounting', label: 'Accounting', roles: ['admin', 'manager', 'accountant', 'popug'] },
  { path: '/analytics', label: 'Analytics', roles: ['admin'] },
];

export const ROLE_NAMES = { admin: 'Admin', manager: 'Manager', accountant: 'Accountant', popug: 'Popug' };

export function mayOpen(role, path) {
  const p = PAGES.find((x) => x.path === path);
  return !!p && p.roles.includes(role);
}

export function logo(size = 28) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.setAttribute('width', size);
  svg.setAttribute('height', size);
  svg.setAttribute('aria-hidden', 'true');
  const parts = [
    ['circle', { cx: 16, cy: 16, r: 15, fill: '#237a4b' }],
    ['path', { d: 'M9 21c0-6 3.5-11 9-11 3.6 0 6 2.4 6 5.6 0 2.6-1.8 4.4-4.3 4.4H15l-3 4z', fill: '#bfe6c9' }],
    ['circle', { cx: 19.5, cy: 14.5, r: 1.6, fill: '#1d2a22' }],
    ['path', { d: 'M24 15.2l3.2 1.6-3.4 1.2z', fill: '#f2b544' }],
  ];
  for (const [tag, attrs] of parts) {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
  }
  return svg;
}

function header(account, current) {
  const nav = h('nav', { class: 'nav', 'aria-label': 'Dashboards' },
    PAGES.filter((p) => p.roles.includes(account.role)).map((p) =>
      h('a', { href: p.path, 'aria-current': p.path === current ? 'page' : null }, p.label)));
  const out = h('button', { type: 'button', class: 'small', id: 'logout' }, 'Log out');
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await logout();
    } catch {
      /* leaving anyway: the refresh token is already forgotten */
    }
    location.replace('/?bye=1');
  });
  return h('div', { class: 'topbar-inner' },
    h('a', { class: 'brand', href: '/tracker' }, logo(), h('span', null, 'aTES ', h('small', null, 'Popug Tracker'))),
    nav,
    h('div', { class: 'who' },
      // a long name is cut with an ellipsis (app.css); the title tells it whole
      h('span', { class: 'who-name', id: 'who-name', title: [account.name, account.email].filter(Boolean).join(' · ') || null },
        account.name || account.email || 'You'),
      h('span', { class: 'badge', id: 'who-role' }, ROLE_NAMES[account.role] || account.role),
      out));
}

/* Show a failure in place of the page's content. */
export function fatal(err) {
  const main = $('main') || document.body;
  const box = h('div', { class: 'msg error', role: 'alert' });
  say(box, 'error', errorText(err));
  fill(main, h('div', { class: 'card refusal' },
    h('h1', null, 'This page could not be shown'), box,
    h('p', null, h('a', { href: location.pathname }, 'Try again'), ' · ', h('a', { href: '/' }, 'Sign in'))));
}

/* Who is signed in; renders the header. Resolves to the account, or never
 * (when the session is gone the page is already going to the login). */
export async function boot(current) {
  installGlobalHandlers();
  let account;
  try {
    account = await get('/api/auth/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return new Promise(() => {});
    fatal(err);
    throw err;
  }
  const top = $('#topbar');
  if (top) fill(top, header(account, current));
  document.body.dataset.role = account.role;
  return account;
}

let installed = false;
function installGlobalHandlers() {
  if (installed) return;
  installed = true;
  const banner = (text) => {
    let b = $('#global-error');
    if (!b) {
      b = h('div', { id: 'global-error', class: 'msg error', role: 'alert' });
      ($('main') || document.body).prepend(b);
    }
    say(b, 'error', text);
  };
  window.addEventListener('error', (e) => {
    if (/ResizeObserver loop/.test(e.message || '')) return; // benign, and not ours to show
    banner('Something went wrong on this page: ' + (e.message || 'unknown error'));
  });
  window.addEventListener('unhandledrejection', (e) => banner(errorText(e.reason)));
}

/* Render a refusal for a role that may not open this dashboard. */
export function refuse(account, what, needs) {
  const main = $('main');
  fill(main, h('div', { class: 'card refusal', id: 'refusal', role: 'alert' },
    logo(44),
    h('h1', null, `${what} is for ${needs} only`),
    h('p', null, `You are signed in as ${account.name || account.email}, a ${(ROLE_NAMES[account.role] || account.role).toLowerCase()}. `
      + 'Ask an admin if you need to see this.'),
    h('p', null, h('a', { class: 'button', href: '/tracker' }, 'Back to your tasks'))));
}
