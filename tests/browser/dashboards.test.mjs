// browser.dashboards: the dashboards in a real browser (Debian's chromium
// through playwright-core) against a real `ates serve` + nats-server on
// loopback. Every role logs in; a popug creates a task (the title refuses
// [ and ] before sending) and completes one of its own; a manager shuffles;
// the all-tasks view filters and pages; an expired access cookie is renewed
// silently and a dead session goes back to the login; API errors show as
// readable messages; an accountant sees the per-day table; an admin sees
// analytics and everyone else is refused there; two overlapping loads of
// one view leave the newer answer drawn and its button usable, and two
// quick completions never bring a done task back. A screenshot of every
// dashboard is written under build/screenshots/ at desktop and 360 px.
//
// Prints one line per test and then "N passed, N failed, N skipped".

import assert from 'node:assert/strict';
import * as H from './harness.mjs';

// ---------------------------------------------------------------------------
// THE SWITCH. Both the accounting and analytics plugins are on main, so a
// test that needs one fails when its routes answer 404. Setting this to
// false turns those failures into SKIP lines (for a branch without them).
const REQUIRE_ACCOUNTING_AND_ANALYTICS = true;
// ---------------------------------------------------------------------------

const ADMIN = { email: 'admin@popug.test', password: 'admin-beak-shape', name: null, role: 'admin' };
const USERS = {
  admin: ADMIN,
  manager: { email: 'boss@popug.test', password: 'boss-beak-shape', name: 'Boss Cockatoo', role: 'manager' },
  accountant: { email: 'abacus@popug.test', password: 'abacus-beak-shape', name: 'Abacus Macaw', role: 'accountant' },
  popug: { email: 'kiwi@popug.test', password: 'kiwi-beak-shape', name: 'Kiwi Lorikeet', role: 'popug' },
  popug2: { email: 'lory@popug.test', password: 'lory-beak-shape', name: 'Lory Budgie', role: 'popug' },
};
const NAV = {
  admin: ['Tasks', 'Accounting', 'Analytics'],
  manager: ['Tasks', 'Accounting'],
  accountant: ['Tasks', 'Accounting'],
  popug: ['Tasks', 'Accounting'],
};

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const money = (c) => (Number(c) < 0 ? '−' : '') + usd.format(Math.abs(Number(c)) / 100);

const counts = { passed: 0, failed: 0, skipped: 0 };
const shots = [];
const contexts = [];
let browser;
let ates;
let nats;
const plugins = { accounting: false, analytics: false };

async function test(name, fn, needs = []) {
  const missing = needs.filter((p) => !plugins[p]);
  if (missing.length && !REQUIRE_ACCOUNTING_AND_ANALYTICS) {
    counts.skipped++;
    console.log(`SKIP ${name} — the ${missing.join(' and ')} plugin is not on this server `
      + `(GET /api/${missing[0]}/today answered 404); REQUIRE_ACCOUNTING_AND_ANALYTICS in tests/browser/dashboards.test.mjs turns this into a failure`);
    return;
  }
  const t0 = Date.now();
  try {
    if (missing.length) throw new Error(`the ${missing.join(' and ')} plugin is not on this server`);
    await fn();
    counts.passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    counts.failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

/* A fresh browser context signed in as `who` through the login page. */
async function signIn(who, viewport = H.DESKTOP) {
  const u = USERS[who];
  const ctx = await H.newContext(browser, ates.base, viewport);
  /* generous: under ASan, beside other jobs, pages are slow */
  ctx.setDefaultTimeout(30000);
  contexts.push(ctx);
  const page = await ctx.newPage();
  await page.goto('/');
  await page.getByLabel('Email').fill(u.email);
  await page.getByLabel('Beak shape').fill(u.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/tracker');
  await page.locator('#who-name').waitFor();
  return { ctx, page };
}

async function shot(page, name) {
  await page.waitForLoadState('networkidle');
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const file = await H.screenshot(page, name);
  shots.push(file);
  return file;
}

const api = (who) => H.client(ates.base, USERS[who].token);

async function openTasks(who, assignee = 'all', status = 'open') {
  const out = [];
  let after = null;
  for (let i = 0; i < 100; i++) {
    const r = await api(who).get(`/api/tasks?assignee=${assignee}&status=${status}&limit=500${after ? '&after=' + after : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.items);
    after = r.body.next;
    if (!after) break;
  }
  return out;
}

/* Tasks made by the admin until `who` has at least n open ones. */
async function ensureOpen(who, n) {
  for (let i = 0; i < 60 && (await openTasks(who, 'me', 'open')).length < n; i++) {
    const r = await api('admin').post('/api/tasks', { title: `For ${who} ${i}` });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  assert.ok((await openTasks(who, 'me', 'open')).length >= n, `${who} has ${n} open tasks`);
}

/* The page is no wider than its viewport (nothing scrolls sideways). */
async function assertNoSideScroll(page, what) {
  const { width, vw } = await page.evaluate(() => ({ width: document.documentElement.scrollWidth, vw: window.innerWidth }));
  assert.ok(width <= vw, `${what}: the page is ${width}px wide in a ${vw}px viewport`);
}

/* --- setup ------------------------------------------------------------------ */

async function setup() {
  nats = await H.startNats();
  ates = await H.startAtes(nats.url, { ATES_ADMIN_EMAIL: ADMIN.email, ATES_ADMIN_PASSWORD: ADMIN.password });
  ADMIN.token = (await H.login(ates.base, ADMIN.email, ADMIN.password)).access_token;
  for (const [key, u] of Object.entries(USERS)) {
    if (key === 'admin') continue;
    const r = await api('admin').post('/api/accounts', { email: u.email, name: u.name, role: u.role, password: u.password });
    assert.equal(r.status, 201, `create ${u.email}: ${JSON.stringify(r.body)}`);
    u.id = r.body.id;
    u.token = (await H.login(ates.base, u.email, u.password)).access_token;
  }
  ADMIN.id = (await api('admin').get('/api/auth/me')).body.id;
  ADMIN.name = (await api('admin').get('/api/auth/me')).body.name;
  for (const p of Object.keys(plugins)) {
    const r = await H.client(ates.base).get(`/api/${p}/today`);
    plugins[p] = r.status !== 404;
  }
  console.log(`server ${ates.base} (log ${ates.logPath}); accounting plugin: ${plugins.accounting ? 'yes' : 'NO'}; `
    + `analytics plugin: ${plugins.analytics ? 'yes' : 'NO'}`);
  // Tasks, by the manager's API, until Kiwi has two open ones and there are
  // more than a page of them (the tracker learns accounts from events, so a
  // create may answer 409 for a moment).
  let created = 0;
  await H.waitFor(async () => {
    const r = await api('manager').post('/api/tasks', { title: `Groom the feathers #${created + 1}`, jira_id: `FTH-${created + 1}`,
      description: created % 3 === 0 ? 'Preen, then a light mist of water.' : undefined });
    if (r.status === 201) created++;
    else if (r.status !== 409) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
    const mine = created >= 24 ? await openTasks('popug', 'me') : [];
    return created >= 24 && mine.length >= 2;
  }, 'seed tasks with two of them assigned to Kiwi', 60000, 20);
  browser = await H.launchBrowser();
}

/* --- the tests --------------------------------------------------------------- */

async function run() {
  await test('login: a wrong beak shape shows the server’s message; empty fields are caught before sending', async () => {
    const ctx = await H.newContext(browser, ates.base);
    contexts.push(ctx);
    const page = await ctx.newPage();
    const posts = [];
    page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });
    await page.goto('/');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await assertText(page.locator('#login-msg'), /enter your email/i);
    assert.equal(posts.length, 0, 'nothing sent with empty fields');
    await page.getByLabel('Email').fill(USERS.popug.email);
    await page.getByLabel('Beak shape').fill('a-wrong-beak');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await assertText(page.locator('#login-msg'), 'Wrong email or password.');
    assert.equal(new URL(page.url()).pathname, '/');
    await shot(page, 'login-error-desktop');
  });

  for (const role of ['admin', 'manager', 'accountant', 'popug']) {
    await test(`login as ${role}: lands on the tracker with name, role, its dashboards, HttpOnly cookie`, async () => {
      const { ctx, page } = await signIn(role);
      const u = USERS[role];
      assert.equal(await page.locator('#who-name').textContent(), u.name);
      assert.equal((await page.locator('#who-role').textContent()).toLowerCase(), role);
      const nav = await page.locator('nav.nav a').allTextContents();
      assert.deepEqual(nav, NAV[role]);
      assert.equal(await page.locator('nav.nav a[aria-current="page"]').textContent(), 'Tasks');
      const cookie = (await ctx.cookies()).find((c) => c.name === 'ates_token');
      assert.ok(cookie && cookie.httpOnly, 'the access token is an HttpOnly cookie');
      assert.ok(!(await page.evaluate(() => document.cookie)).includes('ates_token'), 'scripts cannot read the token');
      assert.ok(await page.evaluate(() => sessionStorage.getItem('ates.refresh_token')), 'refresh token kept in sessionStorage');
      USERS[role].session = { ctx, page };
    });
  }

  await test('the login page asks /api/auth/me only when this browser may be signed in (no 401 in the console)', async () => {
    const ctx = await H.newContext(browser, ates.base);
    ctx.setDefaultTimeout(30000);
    contexts.push(ctx);
    const page = await ctx.newPage();
    let probes = 0;
    const errors = [];
    page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/auth/me') probes++; });
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto('/');
    await page.waitForLoadState('networkidle');
    assert.equal(probes, 0, 'no probe in a browser that never signed in');
    assert.deepEqual(errors, []);
    await page.getByLabel('Email').fill(USERS.popug2.email);
    await page.getByLabel('Beak shape').fill(USERS.popug2.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/tracker');
    await page.locator('#who-name').waitFor();
    await page.goto('/'); // signed in: the login page sends you on
    await page.waitForURL('**/tracker');
    await page.locator('#who-name').waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/\?bye=1$/);
    await page.waitForLoadState('networkidle');
    probes = 0;
    await page.goto('/');
    await page.waitForLoadState('networkidle');
    assert.equal(probes, 0, 'no probe after logging out');
    assert.deepEqual(errors, []);
    await ctx.close();
  });

  await test('login lockout: the wait is said once, in minutes', async () => {
    const email = 'nobody-locked@popug.test';
    await H.waitFor(async () => (await H.client(ates.base).post('/api/auth/login', { email, password: 'wrong' })).status === 429,
      'the lockout', 20000, 0);
    const ctx = await H.newContext(browser, ates.base, H.PHONE);
    contexts.push(ctx);
    const page = await ctx.newPage();
    await page.goto('/');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Beak shape').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const got = await assertText(page.locator('#login-msg'), /too many failed logins/i);
    assert.equal((got.match(/try again/gi) || []).length, 1, `the wait is named once: ${got}`);
    assert.match(got, /try again in about 15 minutes\.$/, got);
    await ctx.close();
  });

  await test('popug creates a task: the title refuses [ and ] before sending, the fix moves the jira id', async () => {
    const { page } = USERS.popug.session;
    const posts = [];
    const onReq = (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/tasks')) posts.push(r); };
    page.on('request', onReq);
    await page.getByRole('button', { name: 'Create task' }).click();
    await assertText(page.locator('#new-msg'), 'Please give the task a title.');
    await page.getByLabel('Title').pressSequentially('Pol');
    assert.ok(await page.locator('#new-msg').isHidden(), 'the old message goes once the title is edited');
    await page.getByLabel('Title').fill('[POP-77] Polish the swing');
    await assertText(page.locator('#title-error'), /cannot contain \[ or \]/);
    assert.equal(await page.getByLabel('Title').getAttribute('aria-invalid'), 'true');
    await page.getByRole('button', { name: 'Create task' }).click();
    await assertText(page.locator('#new-msg'), /nothing was sent/);
    assert.equal(posts.length, 0, 'no POST /api/tasks with a bracket in the title');
    await page.getByRole('button', { name: /Move “POP-77” to the Jira id field/ }).click();
    assert.equal(await page.getByLabel('Title').inputValue(), 'Polish the swing');
    assert.equal(await page.getByLabel(/Jira id/).inputValue(), 'POP-77');
    assert.ok(await page.locator('#title-error').isHidden());
    await page.getByLabel(/Description/).fill('Both ropes, and the bell.');
    await page.getByRole('button', { name: 'Create task' }).click();
    await assertText(page.locator('#new-msg'), /Created “Polish the swing”/);
    page.off('request', onReq);
    assert.equal(posts.length, 1);
    const all = await openTasks('admin', 'all', 'open');
    const t = all.find((x) => x.title === 'Polish the swing');
    assert.ok(t, 'the task exists');
    assert.equal(t.jira_id, 'POP-77');
    assert.equal(t.description, 'Both ropes, and the bell.');
  });

  await test('popug completes one of its own tasks; it moves to Done', async () => {
    const { page } = USERS.popug.session;
    await page.reload();
    const first = page.locator('#mine-open-list li.task').first();
    await first.waitFor();
    const id = await first.getAttribute('data-task');
    const title = await first.locator('.task-title').textContent();
    await first.getByRole('button', { name: /^Complete/ }).click();
    await assertText(page.locator('#mine-msg'), `Done: “${title}”. Nice work!`);
    const r = await api('popug').get(`/api/tasks/${id}`);
    assert.equal(r.body.status, 'done');
    assert.equal(r.body.assignee_id, USERS.popug.id);
    await page.getByRole('button', { name: /^Done/ }).click();
    await page.locator(`#mine-done-list li[data-task="${id}"]`).waitFor();
    assert.equal(await page.locator('#mine-done-n').textContent(), '(1)');
    USERS.popug.completed = id;
  });

  await test('all tasks: pages of 20 with next/previous, filters by status and assignee', async () => {
    const { page } = USERS.popug.session;
    await page.reload();
    const total = (await openTasks('admin', 'all', 'open')).length + (await openTasks('admin', 'all', 'done')).length;
    assert.ok(total > 20, `more than a page of tasks (${total})`);
    const rows = page.locator('#all-list tbody tr');
    await assertCount(rows, 20);
    assert.ok(await page.locator('#all-prev').isDisabled());
    await page.getByRole('button', { name: 'Next →' }).click();
    await assertText(page.locator('#all-where'), /^Page 2/);
    await assertCount(rows, Math.min(20, total - 20));
    assert.equal(await page.locator('#all-next').isDisabled(), total <= 40, 'a third page only when there are more than 40');
    await page.getByRole('button', { name: '← Previous' }).click();
    await assertText(page.locator('#all-where'), /^Page 1/);
    await page.getByLabel('Status').selectOption('done');
    await assertText(page.locator('#all-where'), 'Page 1 · 1 task');
    assert.deepEqual(await page.locator('#all-list tbody tr .badge.done').allTextContents(), ['Done']);
    await page.getByLabel('Status').selectOption('open');
    await page.getByLabel('Assignee').selectOption('me');
    const mine = (await openTasks('popug', 'me', 'open')).length;
    await assertText(page.locator('#all-where'), `Page 1 · ${mine} task${mine === 1 ? '' : 's'}`);
    const who = await page.locator('#all-list tbody tr td:nth-child(3)').allTextContents();
    assert.ok(who.length === mine && who.every((w) => w === 'you'), `every row is mine: ${who}`);
  });

  await test('completing from All tasks says Done there, and the message stays when the list reloads', async () => {
    const { page } = USERS.popug.session;
    await ensureOpen('popug', 1);
    await page.reload();
    await page.getByLabel('Assignee').selectOption('me');
    await page.getByLabel('Status').selectOption('open');
    const mine = (await openTasks('popug', 'me', 'open')).length;
    await assertText(page.locator('#all-where'), `Page 1 · ${mine} task${mine === 1 ? '' : 's'}`);
    const row = page.locator('#all-list tbody tr').first();
    const id = await row.getAttribute('data-task');
    const title = (await row.locator('.task-title').textContent()).trim();
    await row.getByRole('button', { name: /^Complete/ }).click();
    await page.locator(`#all-list tbody tr[data-task="${id}"]`).waitFor({ state: 'detached' });
    await H.sleep(100);
    assert.ok(await page.locator('#all-msg').isVisible(), 'the message is on screen after the reload');
    await assertText(page.locator('#all-msg'), `Done: “${title}”. Nice work!`);
    assert.equal((await api('popug').get(`/api/tasks/${id}`)).body.status, 'done');
  });

  await test('two quick completions: the older refresh, answered last, does not bring a done task back', async () => {
    const { page } = USERS.popug.session;
    for (let i = 0; i < 60 && (await openTasks('popug', 'me', 'open')).length < 2; i++) {
      const r = await api('admin').post('/api/tasks', { title: `For the race ${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await page.reload();
    await page.getByRole('button', { name: /^Open/ }).click();
    const items = page.locator('#mine-open-list li.task');
    await items.nth(1).waitFor();
    const [a, b] = [await items.nth(0).getAttribute('data-task'), await items.nth(1).getAttribute('data-task')];
    /* the first refresh's open list, read from the server at once, reaches
     * the page after the second one's */
    const path = '**/api/tasks?*assignee=me*';
    let opens = 0;
    const held = [];
    const handler = (route) => {
      const open = new URL(route.request().url()).searchParams.get('status') === 'open';
      const ms = open ? [900, 200][opens++] ?? 0 : 0;
      held.push(route.fetch().then(async (response) => {
        await H.sleep(ms);
        await route.fulfill({ response });
      }).catch(() => {}));
    };
    await page.route(path, handler);
    await page.locator(`#mine-open-list li[data-task="${a}"]`).getByRole('button', { name: /^Complete/ }).click();
    await H.waitFor(async () => opens >= 1, 'the first refresh');
    await page.locator(`#mine-open-list li[data-task="${b}"]`).getByRole('button', { name: /^Complete/ }).click();
    await H.waitFor(async () => opens >= 2, 'the second refresh');
    await Promise.all(held);
    await page.unroute(path, handler);
    await H.sleep(200); /* a late answer would be drawn by now */
    assert.equal(await page.locator(`#mine-open-list li[data-task="${a}"]`).count(), 0, 'the first done task stays out of Open');
    assert.equal(await page.locator(`#mine-open-list li[data-task="${b}"]`).count(), 0, 'the second done task stays out of Open');
  });

  await test('manager shuffles and sees how many open tasks were reassigned; a popug has no shuffle', async () => {
    assert.ok(await USERS.popug.session.page.locator('#shuffle-card').isHidden(), 'no shuffle for a popug');
    const { page } = USERS.manager.session;
    const open = (await openTasks('admin', 'all', 'open')).length;
    assert.ok(open > 0);
    await page.getByRole('button', { name: 'Shuffle open tasks' }).click();
    await assertText(page.locator('#shuffle-msg'), `Shuffled: ${open} open tasks were reassigned.`);
    assert.equal(await page.locator('#shuffle-msg').getAttribute('data-reassigned'), String(open));
    await shot(page, 'tracker-manager-shuffled-desktop');
  });

  await test('a stale Complete (done elsewhere: 409; reassigned: 403) says so plainly and refreshes the lists', async () => {
    const { page } = USERS.popug.session;
    await ensureOpen('popug', 2);
    await page.reload();
    await page.getByRole('button', { name: /^Open/ }).click();
    const items = page.locator('#mine-open-list li.task');
    await items.nth(1).waitFor();
    const [a, b] = [await items.nth(0).getAttribute('data-task'), await items.nth(1).getAttribute('data-task')];
    // b is completed behind the page's back
    assert.equal((await api('popug').post(`/api/tasks/${b}/complete`)).status, 200);
    await page.locator(`#mine-open-list li[data-task="${b}"]`).getByRole('button', { name: /^Complete/ }).click();
    await assertText(page.locator('#mine-msg'), /is already done/);
    await page.locator(`#mine-open-list li[data-task="${b}"]`).waitFor({ state: 'detached' });
    // a is shuffled away from Kiwi behind the page's back
    let moved = false;
    for (let i = 0; i < 40 && !moved; i++) {
      assert.equal((await api('manager').post('/api/tasks/shuffle')).status, 200);
      moved = (await api('admin').get(`/api/tasks/${a}`)).body.assignee_id !== USERS.popug.id;
    }
    assert.ok(moved, 'a shuffle gave the task to someone else');
    await page.locator(`#mine-open-list li[data-task="${a}"]`).getByRole('button', { name: /^Complete/ }).click();
    await assertText(page.locator('#mine-msg'), /no longer yours: it was reassigned/);
    await page.locator(`#mine-open-list li[data-task="${a}"]`).waitFor({ state: 'detached' });
    const open = await openTasks('popug', 'me', 'open');
    await assertText(page.locator('#mine-open-n'), `(${open.length})`);
  });

  await test('an API error shows the CONTRACT message; a non-JSON failure is still a sentence', async () => {
    const { ctx, page } = await signIn('popug2');
    const tasksPath = (url) => url.pathname === '/api/tasks';
    await page.route(tasksPath, (route) => (route.request().method() === 'POST'
      ? route.fulfill({ status: 503, contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: 'the tracker database is busy' } }) })
      : route.continue()));
    await page.getByLabel('Title').fill('Sweep the aviary');
    await page.getByRole('button', { name: 'Create task' }).click();
    await assertText(page.locator('#new-msg'), 'The tracker database is busy.');
    await page.unroute(tasksPath);
    await page.route(tasksPath, (route) => route.fulfill({ status: 502, contentType: 'text/html', body: '<h1>Bad Gateway</h1>' }));
    await page.getByLabel('Status').selectOption('done');
    await assertText(page.locator('#all-msg'), /^The server answered 502/);
    await ctx.close();
  });

  await test('an expired access cookie is renewed with the refresh token; a dead session goes back to the login', async () => {
    const { ctx, page } = await signIn('popug2');
    const before = await page.evaluate(() => sessionStorage.getItem('ates.refresh_token'));
    await ctx.clearCookies(); // what the browser does when the cookie's Max-Age runs out
    await page.reload();
    await assertText(page.locator('#who-name'), USERS.popug2.name);
    await page.locator('#all-list table').waitFor();
    const after = await page.evaluate(() => sessionStorage.getItem('ates.refresh_token'));
    assert.ok(after && after !== before, 'the refresh token was rotated');
    assert.ok((await ctx.cookies()).some((c) => c.name === 'ates_token' && c.value), 'a new access cookie');
    // the spent token again: the server revokes the family; the page asks to sign in
    await ctx.clearCookies();
    await page.evaluate((t) => sessionStorage.setItem('ates.refresh_token', t), before);
    await page.goto('/accounting');
    await page.waitForURL(/\/\?expired=1&next=%2Faccounting$/);
    await assertText(page.locator('#login-msg'), /session has ended/);
    await page.getByLabel('Email').fill(USERS.popug2.email);
    await page.getByLabel('Beak shape').fill(USERS.popug2.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/accounting');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/\?bye=1$/);
    await assertText(page.locator('#login-msg'), /signed out/);
    assert.equal(await page.evaluate(async () => (await fetch('/api/auth/me')).status), 401, 'the cookie is gone');
    await page.goto('/tracker');
    await page.waitForURL(/\/\?expired=1/);
    await ctx.close();
  });

  await test('analytics refuses every role but admin with a readable message', async () => {
    for (const role of ['popug', 'manager', 'accountant']) {
      const { page } = USERS[role].session;
      await page.goto('/analytics');
      await assertText(page.locator('#refusal h1'), 'Analytics is for admins only');
      assert.ok(await page.locator('#analytics').count() === 0 || await page.locator('#analytics').isHidden());
    }
  });

  await test('popug sees its balance now and its audit log of a day', async () => {
    const { page } = USERS.popug.session;
    const me = await H.waitFor(async () => {
      const r = await api('popug').get('/api/accounting/me');
      return r.status === 200 && r.body.entries.some((e) => e.kind === 'credit') && r.body;
    }, 'accounting booked Kiwi’s reward');
    await page.goto('/accounting');
    assert.ok(await page.locator('#company').isHidden(), 'no company numbers for a popug');
    await assertText(page.locator('#my-balance'), money(me.balance_cents));
    await assertCount(page.locator('#my-entries-table tbody tr'), me.entries.length);
    assert.equal(await page.locator('#my-day').inputValue(), me.day);
    await page.locator('#my-day').fill('2001-01-01');
    await page.locator('#my-day').dispatchEvent('change');
    await assertText(page.locator('#my-entries'), 'No entries on this day.');
  }, ['accounting']);

  await test('accountant sees today’s earnings, the per-day table and chart, and an account’s log', async () => {
    const { page } = USERS.accountant.session;
    const today = await H.waitFor(async () => {
      const r = await api('accountant').get('/api/accounting/today');
      return r.status === 200 && r.body;
    }, 'accounting today');
    const days = await H.waitFor(async () => {
      const r = await api('accountant').get(`/api/accounting/days?from=${today.day}&to=${today.day}`);
      const d = r.status === 200 && r.body.items.find((x) => x.day === today.day);
      return d && d.credits_cents > 0 && d;
    }, 'today in /api/accounting/days with Kiwi’s reward');
    await page.goto('/accounting');
    const row = page.locator(`#days tbody tr[data-day="${today.day}"]`);
    await row.waitFor();
    await assertText(row.locator('td').nth(1), money(days.management_earnings_cents));
    await assertText(page.locator('#today-earnings'), money((await api('accountant').get('/api/accounting/today')).body.management_earnings_cents));
    assert.ok(await page.locator('#days-chart svg rect.bar').count() >= 1, 'a bar per day');
    assert.ok(await page.locator('#close-card').isHidden(), 'closing a day is for admins');
    const kiwi = (await api('accountant').get(`/api/accounting/accounts/${USERS.popug.id}`)).body;
    await page.getByLabel('Account', { exact: true }).fill(USERS.popug.id);
    await page.locator('#acct-show').click();
    await assertText(page.locator('#acct-summary'), money(kiwi.balance_cents));
    await assertCount(page.locator('#acct-entries tbody tr'), kiwi.entries.length);
    // a task's price from the log
    await page.locator('#acct-entries tbody tr button.link').first().click();
    await assertText(page.locator('#acct-entries tr.details-row'), /Assign fee \$[\d.,]+ · reward \$[\d.,]+/);
    // a readable error for an id that is no account
    await page.getByLabel('Account', { exact: true }).fill('not-an-id');
    await page.locator('#acct-show').click();
    await assertText(page.locator('#acct-msg'), /Enter an account id/);
  }, ['accounting']);

  await test('a 90-character title without spaces wraps in the accounting log (360 px and desktop)', async () => {
    const title = 'Averyveryverylongtitle'.padEnd(86, 'x') + 'deed';
    assert.equal(title.length, 90);
    const made = await H.waitFor(async () => {
      const r = await api('manager').post('/api/tasks', { title });
      if (r.status !== 201 && r.status !== 409) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
      return r.status === 201 && r.body;
    }, 'the long-titled task');
    const log = await H.waitFor(async () => {
      const r = await api('accountant').get(`/api/accounting/accounts/${made.assignee_id}`);
      return r.status === 200 && r.body.entries.some((e) => e.task_id === made.id) && r.body;
    }, 'the assign fee in the assignee’s log');
    const { page } = USERS.accountant.session;
    for (const vp of [H.PHONE, H.DESKTOP]) {
      await page.setViewportSize(vp);
      await page.goto('/accounting');
      await page.getByLabel('Account', { exact: true }).fill(made.assignee_id);
      await page.locator('#acct-day').fill(log.day);
      await page.locator('#acct-show').click();
      await page.locator('#acct-entries tbody tr', { hasText: title.slice(0, 30) }).first().waitFor();
      await assertNoSideScroll(page, `the log with a long title at ${vp.width}px`);
      const wrap = await page.locator('#acct-result .table-wrap').evaluate((el) => ({ sw: el.scrollWidth, cw: el.clientWidth }));
      assert.ok(wrap.sw <= wrap.cw + 1, `the table fits its card at ${vp.width}px (${wrap.sw} > ${wrap.cw})`);
    }
  }, ['accounting']);

  await test('desktop accounting: an account’s log takes the width; the close-day card does not stretch', async () => {
    for (const role of ['accountant', 'admin']) {
      const { page } = USERS[role].session;
      await page.setViewportSize(H.DESKTOP);
      await page.goto('/accounting');
      await page.getByLabel('Account', { exact: true }).fill(USERS.popug.id);
      await page.locator('#acct-show').click();
      await page.locator('#acct-entries tbody tr').first().waitFor();
      const box = async (sel) => page.locator(sel).boundingBox();
      const [company, acct] = [await box('#company'), await box('section:has(> #acct-form)')];
      if (role === 'accountant') {
        assert.ok(acct.width >= company.width - 2, `the log is as wide as the page (${acct.width} of ${company.width})`);
      } else {
        const close = await box('#close-card');
        assert.ok(acct.width >= 0.6 * company.width, `the log has most of the width (${acct.width} of ${company.width})`);
        assert.ok(close.height < acct.height && close.height < 500, `the close card is as tall as its content (${close.height}px)`);
      }
    }
  }, ['accounting']);

  await test('charts at 360 px: the latest bar always has a label', async () => {
    const { page } = USERS.accountant.session;
    await page.setViewportSize(H.PHONE);
    await page.goto('/accounting');
    await page.locator('#days-chart svg .x-label').first().waitFor();
    await page.waitForFunction(() => Number(document.querySelector('#days-chart svg').getAttribute('width')) < 400);
    const bars = await page.locator('#days-chart svg rect.bar').count();
    const labels = await page.locator('#days-chart svg .x-label').allTextContents();
    assert.ok(labels.length < bars, `labels are thinned at 360 px (${labels.length} for ${bars} bars)`);
    const last = await page.evaluate(() => new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' })
      .format(new Date(document.querySelector('#days-to').value + 'T00:00:00Z')));
    assert.equal(labels[labels.length - 1], last);
    await page.setViewportSize(H.DESKTOP);
  }, ['accounting']);

  await test('admin sees the accounting view and closes today; the table shows it closed', async () => {
    const { page } = USERS.admin.session;
    await page.goto('/accounting');
    const today = (await api('admin').get('/api/accounting/today')).body;
    await assertText(page.locator('#today-earnings'), money(today.management_earnings_cents));
    await page.waitForFunction(() => document.querySelectorAll('#acct-ids option').length > 0);
    await page.getByLabel('Account', { exact: true }).fill(USERS.popug.email);
    await page.locator('#acct-show').click();
    await assertText(page.locator('#acct-summary'), USERS.popug.name);
    await shot(page, 'accounting-admin-desktop');
    await page.locator('#close-day').fill(today.day);
    await page.getByRole('button', { name: 'Close day…' }).click();
    await page.getByRole('button', { name: 'Yes, close it' }).click();
    await assertText(page.locator('#close-msg'), /Closed/);
    await H.waitFor(async () => {
      const r = await api('admin').get(`/api/accounting/days?from=${today.day}&to=${today.day}`);
      return r.status === 200 && r.body.items.some((d) => d.day === today.day && d.closed);
    }, 'today closed');
    await page.locator('#days-show').click();
    await assertText(page.locator(`#days tbody tr[data-day="${today.day}"] .badge`), 'Closed');
    // closing it again changes nothing, and the page says so
    await page.getByRole('button', { name: 'Close day…' }).click();
    await page.getByRole('button', { name: 'Yes, close it' }).click();
    const again = await assertText(page.locator('#close-msg'), /was already closed; nothing changed\.$/);
    assert.doesNotMatch(again, /Closed|Paid out/);
  }, ['accounting']);

  await test('admin sees analytics: today, the most expensive task per period, day by day', async () => {
    const { page } = USERS.admin.session;
    const today = await H.waitFor(async () => {
      const r = await api('admin').get('/api/analytics/today');
      return r.status === 200 && r.body;
    }, 'analytics today');
    const exp = await H.waitFor(async () => {
      const r = await api('admin').get(`/api/analytics/most-expensive?period=day&from=${today.day}&to=${today.day}`);
      return r.status === 200 && r.body.items.length > 0 && r.body;
    }, 'analytics knows the completed task');
    await page.goto('/analytics');
    assert.ok(await page.locator('#refusal').count() === 0);
    const now = (await api('admin').get('/api/analytics/today')).body;
    await assertText(page.locator('#an-earnings'), money(now.management_earnings_cents));
    await assertText(page.locator('#an-negative'), String(now.negative_accounts));
    await page.getByLabel('Per', { exact: true }).selectOption('day');
    await page.locator('#exp-from').fill(today.day);
    await page.locator('#exp-to').fill(today.day);
    await page.locator('#exp-show').click();
    await assertCount(page.locator('#expensive tbody tr'), exp.items.length);
    await assertText(page.locator('#expensive tbody tr').first(), exp.items[0].title);
    await assertText(page.locator('#expensive tbody tr').first(), money(exp.items[0].reward_cents));
    assert.equal(await page.locator('#exp-chart svg rect.bar').count(), exp.items.length);
    await page.locator(`#an-days tbody tr[data-day="${today.day}"]`).waitFor();
  }, ['analytics']);

  await test('a load begun while the last is still out: the newer answer stays drawn, Show stays usable', async () => {
    const { page } = USERS.admin.session;
    await page.goto('/analytics');
    await page.waitForFunction(() => { const b = document.querySelector('#exp-show'); return b && !b.disabled; });
    const path = '**/api/analytics/most-expensive*';
    /* Two changes of "Per" in a row, each answered after delays[period] ms,
     * so the two loads overlap and end in the order the delays say. */
    const overlap = async (delays, first, second) => {
      const held = [];
      const handler = (route) => {
        const period = new URL(route.request().url()).searchParams.get('period');
        held.push(H.sleep(delays[period] || 0).then(() => route.continue()).catch(() => {}));
      };
      await page.route(path, handler);
      const answered = (period) => page.waitForResponse((r) => r.url().includes('/most-expensive') && r.url().includes(`period=${period}`));
      const both = Promise.all([answered(first), answered(second)]);
      await page.getByLabel('Per', { exact: true }).selectOption(first);
      await page.getByLabel('Per', { exact: true }).selectOption(second);
      await both;
      await Promise.all(held);
      await page.unroute(path, handler);
      await page.waitForFunction(() => !document.querySelector('#exp-show').hasAttribute('aria-busy'));
      await H.sleep(100); /* a late answer would be drawn by now */
    };
    /* the older load answers last: it must not draw over the newer one */
    await overlap({ week: 900, month: 200 }, 'week', 'month');
    assert.equal((await page.locator('#expensive thead th').first().textContent()).trim(), 'Month');
    /* the newer load ends last: the button must not stay disabled */
    await overlap({ day: 200, week: 900 }, 'day', 'week');
    assert.equal((await page.locator('#expensive thead th').first().textContent()).trim(), 'Week');
    assert.equal(await page.locator('#exp-show').isDisabled(), false, 'Show is usable again');
  }, ['analytics']);

  await test('a 64-character name is cut with an ellipsis at 360 px; Log out stays on screen', async () => {
    const name = 'Maximilianafeatheringtoncockatielofthenorthernperchaviary'.padEnd(64, 'z');
    const u = { email: 'longname@popug.test', password: 'long-beak-shape', name, role: 'popug' };
    const r = await api('admin').post('/api/accounts', u);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    USERS.longname = u;
    const { ctx, page } = await signIn('longname', H.PHONE);
    for (const path of ['/tracker', '/accounting', '/analytics']) {
      await page.goto(path);
      await page.locator('#who-name').waitFor();
      await page.waitForLoadState('networkidle');
      await assertNoSideScroll(page, `${path} with a long name`);
      const out = await page.locator('#logout').boundingBox();
      assert.ok(out.x + out.width <= H.PHONE.width, `Log out ends at ${out.x + out.width}px`);
      assert.equal(await page.locator('#who-name').textContent(), name);
      assert.match(await page.locator('#who-name').getAttribute('title'), new RegExp(`^${name}`));
      assert.ok(await page.locator('#who-name').evaluate((el) => el.scrollWidth > el.clientWidth), 'the name is cut');
    }
    await shot(page, 'tracker-longname-360px');
    await ctx.close();
  });

  await test('screenshots of every dashboard at desktop and 360 px; nothing wider than the phone', async () => {
    const views = [
      ['login', null, '/'],
      ['tracker-popug', 'popug', '/tracker'],
      ['tracker-manager', 'manager', '/tracker'],
      ['accounting-popug', 'popug', '/accounting'],
      ['accounting-accountant', 'accountant', '/accounting'],
      ['accounting-admin', 'admin', '/accounting'],
      ['analytics-admin', 'admin', '/analytics'],
      ['analytics-refused-popug', 'popug', '/analytics'],
    ];
    for (const [size, vp] of [['desktop', H.DESKTOP], ['360px', H.PHONE]]) {
      for (const [name, who, path] of views) {
        let page = who ? USERS[who].session.page : null;
        let fresh = null;
        if (!page) {
          fresh = await H.newContext(browser, ates.base, vp);
          contexts.push(fresh);
          page = await fresh.newPage();
        }
        await page.setViewportSize(vp);
        await page.goto(path);
        await page.locator(who ? '#who-name' : '#login-form').waitFor();
        await shot(page, `${name}-${size}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= vp.width, `${name} at ${size} is ${width}px wide`);
        if (fresh) await fresh.close();
      }
    }
  });

  await test('the browser asked nothing of any other host and no page threw', async () => {
    const blocked = contexts.flatMap((c) => c.blocked);
    const errors = contexts.flatMap((c) => c.pageErrors);
    assert.deepEqual(blocked, []);
    assert.deepEqual(errors, []);
  });
}

/* Wait until the locator's text matches (a bound to give up, not a speed test). */
async function assertText(locator, want, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let got = null;
  for (;;) {
    got = (await locator.count()) ? (await locator.first().textContent()).trim() : null;
    const ok = got !== null && (want instanceof RegExp ? want.test(got) : got.includes(want));
    if (ok) return got;
    if (Date.now() > deadline) assert.fail(`text of ${locator}: got ${JSON.stringify(got)}, want ${want}`);
    await H.sleep(50);
  }
}

async function assertCount(locator, n, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = await locator.count();
    if (got === n) return;
    if (Date.now() > deadline) assert.fail(`count of ${locator}: got ${got}, want ${n}`);
    await H.sleep(50);
  }
}

async function main() {
  try {
    await setup();
    await run();
  } catch (e) {
    counts.failed++;
    console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
  }
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  if (ates) {
    const code = await ates.stop();
    if (code === 0) counts.passed++;
    else {
      counts.failed++;
      console.log(`FAIL ates did not stop cleanly (exit ${code}); log: ${ates.logPath}`);
    }
  }
  if (nats) await nats.stop();
  if (shots.length) console.log(`screenshots (${shots.length}) in ${H.SHOTS}:\n  ${shots.join('\n  ')}`);
  console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  process.exit(counts.failed || !counts.passed ? 1 : 0);
}

main();
