// harness: a real nats-server and a real `ates serve` on free loopback
// ports with a temp data dir and ATES_WEB_DIR pointing at web/, a few API
// helpers, and Debian's chromium through playwright-core — headless, a fresh
// profile, and every request that is not for our server refused, so the
// browser never reaches the internet.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SRC = process.env.ATES_SRC || path.resolve(HERE, '..', '..');
export const ATES_BIN = process.env.ATES_BIN || path.join(SRC, 'build', 'ates');
export const TMP_ROOT = process.env.ATES_TEST_TMP || os.tmpdir();
export const SHOTS = process.env.ATES_SCREENSHOTS || path.join(path.dirname(ATES_BIN), 'screenshots');
export const CHROMIUM = process.env.ATES_CHROMIUM || '/usr/bin/chromium';

const procs = [];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmpdir(name) {
  fs.mkdirSync(TMP_ROOT, { recursive: true });
  return fs.mkdtempSync(path.join(TMP_ROOT, `${name}-`));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500);
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
    s.on('timeout', () => { s.destroy(); resolve(false); });
  });
}

/* Poll fn() until truthy; throws after `timeout` ms (a bound to give up, not
 * a speed assertion). */
export async function waitFor(fn, what, timeout = 20000, interval = 100) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function track(child, name) {
  procs.push(child);
  child.on('exit', () => { child.exited = true; });
  child.name = name;
  return child;
}

export function killAll() {
  for (const p of procs) if (!p.exited && p.exitCode === null) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(2); });

export async function startNats() {
  const port = await freePort();
  const store = tmpdir('nats');
  const log = fs.openSync(path.join(store, 'nats.log'), 'a');
  const child = track(spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store],
    { stdio: ['ignore', log, log] }), 'nats-server');
  await waitFor(() => portOpen(port), `nats-server on ${port}`);
  return { port, url: `nats://127.0.0.1:${port}`, store, child, stop: () => stopChild(child) };
}

function stopChild(child, timeout = 20000) {
  return new Promise((resolve) => {
    if (child.exited || child.exitCode !== null) return resolve(child.exitCode);
    const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, timeout);
    child.once('exit', (code, signal) => { clearTimeout(t); resolve(code === null ? signal : code); });
    child.kill('SIGTERM');
  });
}

export async function startAtes(natsUrl, env = {}) {
  const port = await freePort();
  const data = tmpdir('data');
  const logPath = path.join(data, 'ates.log');
  const log = fs.openSync(logPath, 'a');
  const childEnv = {
    ...process.env,
    ATES_HTTP_ADDR: `127.0.0.1:${port}`,
    ATES_NATS_URL: natsUrl,
    ATES_DATA_DIR: data,
    ATES_RULES_DIR: path.join(SRC, 'rules'),
    ATES_SCHEMAS_DIR: path.join(SRC, 'config', 'schemas'),
    ATES_WEB_DIR: path.join(SRC, 'web'),
    ATES_SEED: '42',
    ATES_LOG: 'info',
    ...env,
  };
  const child = track(spawn(ATES_BIN, ['serve'], { env: childEnv, cwd: data, stdio: ['ignore', log, log] }), 'ates');
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exited) throw new Error(`ates exited (${child.exitCode}); log: ${logPath}`);
    return (await fetch(`${base}/ready`)).status === 200;
  }, `ates /ready (log: ${logPath})`, 30000);
  return { port, base, data, logPath, child, stop: () => stopChild(child) };
}

/* A tiny API client: {status, body}. */
export function client(base, token) {
  const call = async (method, p, body) => {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: r.status, body: json };
  };
  return { get: (p) => call('GET', p), post: (p, b) => call('POST', p, b), call };
}

export async function login(base, email, password) {
  const r = await client(base).post('/api/auth/login', { email, password });
  if (r.status !== 200) throw new Error(`login ${email}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/* --- the browser ------------------------------------------------------------ */

export async function launchBrowser() {
  const pwPath = path.join(HERE, 'node_modules', 'playwright-core', 'index.mjs');
  if (!fs.existsSync(pwPath)) {
    throw new Error('playwright-core is not installed: run `npm ci --prefix tests/browser` (tools/deps.sh does it)');
  }
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (tools/deps.sh does it)`);
  }
  const { chromium } = await import(pwPath);
  // launch() gives the browser a fresh temporary profile of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
}

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 360, height: 740 };

/* A new isolated context (own cookies and sessionStorage) that may only talk
 * to `base`; every other request is aborted and recorded in ctx.blocked. */
export async function newContext(browser, base, viewport = DESKTOP) {
  const ctx = await browser.newContext({ viewport, baseURL: base, serviceWorkers: 'block', locale: 'en-US', timezoneId: 'UTC' });
  ctx.blocked = [];
  ctx.pageErrors = [];
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base + '/') || url === base) return route.continue();
    if (url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    ctx.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  ctx.on('page', (page) => page.on('pageerror', (e) => ctx.pageErrors.push(String(e))));
  return ctx;
}

export async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
