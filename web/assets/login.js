// login: "/" — email and beak shape (the password) → the tracker, or to
// the page the session ended on.

import { forgetSession, login, maybeSignedIn, refreshSession, refreshToken } from './api.js';
import { $, busy, clearOnEdit, say, sayError } from './dom.js';

const PAGES = ['/tracker', '/accounting', '/analytics'];

function nextPage() {
  const next = new URLSearchParams(location.search).get('next');
  return PAGES.includes(next) ? next : '/tracker';
}

/* Only asked when this browser may hold a session (see maybeSignedIn): a
 * visit with none makes no request, so no 401 shows in the console. */
async function alreadySignedIn() {
  if (!maybeSignedIn()) return false;
  try {
    const r = await fetch('/api/auth/me', { credentials: 'same-origin', cache: 'no-store' });
    if (r.ok) return true;
    if (r.status === 401 && refreshToken() && await refreshSession()) return true;
    forgetSession();
    return false;
  } catch {
    return false;
  }
}

function start() {
  const msg = $('#login-msg');
  const form = $('#login-form');
  const params = new URLSearchParams(location.search);
  if (params.has('expired')) say(msg, 'info', 'Your session has ended. Please sign in again.');
  else if (params.has('bye')) say(msg, 'ok', 'You are signed out. See you soon.');
  else alreadySignedIn().then((yes) => { if (yes) location.replace(nextPage()); });
  clearOnEdit(form, msg);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const email = $('#email').value.trim();
    const password = $('#password').value;
    if (!email || !password) {
      say(msg, 'error', !email ? 'Please enter your email.' : 'Please enter your beak shape.');
      (!email ? $('#email') : $('#password')).focus();
      return;
    }
    say(msg, 'info', '');
    try {
      await busy($('#login-submit'), () => login(email, password));
      location.replace(nextPage());
    } catch (err) {
      sayError(msg, err);
      $('#password').select();
    }
  });
}

start();
