// login: "/" — email and beak shape (the password) → the tracker, or to
// the page the session ended on.

import { login } from './api.js';
import { $, busy, say, sayError } from './dom.js';

const PAGES = ['/tracker', '/accounting', '/analytics'];

function nextPage() {
  const next = new URLSearchParams(location.search).get('next');
  return PAGES.includes(next) ? next : '/tracker';
}

async function alreadySignedIn() {
  try {
    const r = await fetch('/api/auth/me', { credentials: 'same-origin', cache: 'no-store' });
    return r.ok;
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
