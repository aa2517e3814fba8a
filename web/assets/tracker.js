// tracker: /tracker — my open and done tasks with a complete button, a form
// to create a task (the title refuses [ and ] before anything is sent), the
// shuffle for managers and admins, and every task with filters and pages.

import { get, post, withQuery } from './api.js';
import { $, busy, clearOnEdit, errorText, fill, h, loads, say, sayError, table } from './dom.js';
import { dateTime, plural, shortId } from './format.js';
import { boot } from './shell.js';

const PAGE_SIZE = 20;
const MINE_LIMIT = 100;
const BRACKETS = /[[\]]/;
const LEADING_JIRA = /^\s*\[([^[\]]{1,64})\]\s*([^[\]]+)$/;

let me = null;
const names = new Map();

function who(id) {
  if (!id) return '—';
  if (me && id === me.id) return 'you';
  return names.get(id) || shortId(id);
}

function statusBadge(status) {
  return h('span', { class: `badge ${status}` }, status === 'done' ? 'Done' : 'Open');
}

function jiraBadge(task) {
  return task.jira_id ? h('span', { class: 'badge jira', title: 'Jira id' }, task.jira_id) : null;
}

/* --- create ----------------------------------------------------------------- */

function checkTitle() {
  const input = $('#title');
  const err = $('#title-error');
  const fix = $('#title-fix');
  const v = input.value;
  if (BRACKETS.test(v)) {
    input.setAttribute('aria-invalid', 'true');
    err.textContent = 'A title cannot contain [ or ]. Put the Jira id in the “Jira id” field below.';
    err.hidden = false;
    const m = LEADING_JIRA.exec(v);
    if (m) {
      fix.textContent = `Move “${m[1].trim()}” to the Jira id field`;
      fix.dataset.jira = m[1].trim();
      fix.dataset.title = m[2].trim();
      fix.hidden = false;
    } else {
      fix.hidden = true;
    }
    return false;
  }
  input.removeAttribute('aria-invalid');
  err.hidden = true;
  err.textContent = '';
  fix.hidden = true;
  return true;
}

function setupCreate() {
  const form = $('#new-form');
  const msg = $('#new-msg');
  $('#title').addEventListener('input', checkTitle);
  clearOnEdit(form, msg);
  $('#title-fix').addEventListener('click', (e) => {
    const b = e.currentTarget;
    $('#title').value = b.dataset.title;
    if (!$('#jira').value.trim()) $('#jira').value = b.dataset.jira;
    checkTitle();
    $('#title').focus();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const title = $('#title').value.trim();
    if (!checkTitle()) {
      say(msg, 'error', 'The title has [ or ] in it; nothing was sent. Move the Jira id to its own field.');
      $('#title').focus();
      return;
    }
    if (!title) {
      say(msg, 'error', 'Please give the task a title.');
      $('#title').focus();
      return;
    }
    const body = { title };
    const jira = $('#jira').value.trim();
    const desc = $('#description').value.trim();
    if (jira) body.jira_id = jira;
    if (desc) body.description = desc;
    try {
      const task = await busy($('#new-submit'), () => post('/api/tasks', body));
      form.reset();
      checkTitle();
      say(msg, 'ok', task.assignee_id === me.id
        ? `Created “${task.title}” — it is assigned to you.`
        : `Created “${task.title}” — assigned to ${who(task.assignee_id)}.`);
      refreshAll();
    } catch (err) {
      sayError(msg, err);
    }
  });
}

/* --- complete ---------------------------------------------------------------- */

/* What a refused completion means for the list on screen: it was drawn
 * before the task changed (a shuffle gave it away, it was done elsewhere). */
const STALE = {
  403: (t) => `“${t.title}” is no longer yours: it was reassigned. Your list is updated.`,
  404: (t) => `“${t.title}” no longer exists. Your list is updated.`,
  409: (t) => `“${t.title}” is already done. Your list is updated.`,
};

async function complete(task, button, msgEl) {
  try {
    await busy(button, () => post(`/api/tasks/${encodeURIComponent(task.id)}/complete`));
    say(msgEl, 'ok', `Done: “${task.title}”. Nice work!`);
    refreshAll({ keep: msgEl });
  } catch (err) {
    const stale = err && err.name === 'ApiError' && STALE[err.status];
    if (!stale) {
      sayError(msgEl, err);
      return;
    }
    say(msgEl, err.status === 409 ? 'info' : 'warn', stale(task));
    refreshAll({ keep: msgEl });
  }
}

function completeButton(task, msgEl) {
  const b = h('button', { type: 'button', class: 'small', 'aria-label': `Complete “${task.title}”`, dataset: { task: task.id } }, 'Complete');
  b.addEventListener('click', () => complete(task, b, msgEl));
  return b;
}

/* --- my tasks ----------------------------------------------------------------- */

const mine = { view: 'open', items: { open: [], done: [] }, more: { open: false, done: false } };

const mineLoads = loads();

async function loadMine(status) {
  const r = await get(withQuery('/api/tasks', { assignee: 'me', status, limit: MINE_LIMIT }));
  return { status, items: r.items || [], more: !!r.next };
}

function renderMine() {
  const list = $('#mine-list');
  const items = mine.items[mine.view];
  $('#mine-open').setAttribute('aria-pressed', String(mine.view === 'open'));
  $('#mine-done').setAttribute('aria-pressed', String(mine.view === 'done'));
  if (!items.length) {
    fill(list, h('p', { class: 'empty' }, mine.view === 'open'
      ? (me.role === 'admin' || me.role === 'manager'
        ? 'No open tasks. Managers and admins are not given tasks.'
        : 'No open tasks. Enjoy the perch!')
      : 'Nothing done yet.'));
    return;
  }
  const msg = $('#mine-msg');
  fill(list, h('ul', { class: 'tasks', id: `mine-${mine.view}-list` }, items.map((t) =>
    h('li', { class: 'task', dataset: { task: t.id } },
      h('div', { class: 'task-main' },
        h('div', { class: 'task-title' }, t.title),
        h('div', { class: 'task-meta' }, jiraBadge(t),
          h('span', null, t.status === 'done' ? `Done ${dateTime(t.completed_at)}` : `Created ${dateTime(t.created_at)}`)),
        t.description ? h('div', { class: 'task-desc' }, t.description) : null),
      t.status === 'open' ? completeButton(t, msg) : statusBadge(t.status)))),
  mine.more[mine.view] ? h('p', { class: 'hint' }, `Showing the first ${MINE_LIMIT}; see “All tasks” below with “Me” for the rest.`) : null);
}

/* Both lists, drawn only if no newer refresh began meanwhile (two quick
 * completions: the first refresh's answers must not bring a done task back). */
async function refreshMine() {
  const load = mineLoads.start();
  try {
    const got = await Promise.all([loadMine('open'), loadMine('done')]);
    if (!mineLoads.current(load)) return;
    for (const { status, items, more } of got) {
      mine.items[status] = items;
      mine.more[status] = more;
      $(`#mine-${status}-n`).textContent = `(${items.length}${more ? '+' : ''})`;
    }
    renderMine();
  } catch (err) {
    if (!mineLoads.current(load)) return;
    fill($('#mine-list'), h('div', { class: 'msg error', role: 'alert' }, errorText(err)));
  }
}

/* --- all tasks ---------------------------------------------------------------- */

const all = { cursors: [null], page: 0, next: null };
const allLoads = loads();

/* opts.keep: a message box not to clear when the list is drawn (the answer
 * to the action that asked for this load). */
async function loadAll(opts = {}) {
  const msg = $('#all-msg');
  const f = $('#all-filter');
  const q = { assignee: f.assignee.value, status: f.status.value, limit: PAGE_SIZE, after: all.cursors[all.page] };
  const load = allLoads.start();
  try {
    const r = await get(withQuery('/api/tasks', q));
    if (!allLoads.current(load)) return;
    if (opts.keep !== msg) say(msg, 'error', '');
    all.next = r.next || null;
    const items = r.items || [];
    const list = $('#all-list');
    if (!items.length) {
      fill(list, h('p', { class: 'empty' }, all.page === 0 ? 'No tasks match these filters.' : 'No more tasks.'));
    } else {
      fill(list, table(
        [{ label: 'Task' }, { label: 'Status' }, { label: 'Assignee' }, { label: 'Created' }, { label: '' }],
        items.map((t) => ({
          dataset: { task: t.id },
          cells: [
            h('div', null, h('div', { class: 'task-title' }, t.title), jiraBadge(t)),
            statusBadge(t.status),
            h('span', { title: t.assignee_id || '' }, who(t.assignee_id)),
            h('span', { class: 'nowrap' }, dateTime(t.created_at)),
            t.status === 'open' && t.assignee_id === me.id ? completeButton(t, msg) : '',
          ],
        })),
        { label: 'All tasks' }));
    }
    $('#all-prev').disabled = all.page === 0;
    $('#all-next').disabled = !all.next;
    $('#all-where').textContent = `Page ${all.page + 1} · ${plural(items.length, 'task', 'tasks')}`;
  } catch (err) {
    if (!allLoads.current(load)) return;
    sayError(msg, err);
    fill($('#all-list'));
  }
}

function setupAll() {
  const f = $('#all-filter');
  f.addEventListener('change', () => {
    all.cursors = [null];
    all.page = 0;
    loadAll();
  });
  f.addEventListener('submit', (e) => e.preventDefault());
  $('#all-next').addEventListener('click', () => {
    if (!all.next) return;
    all.cursors[all.page + 1] = all.next;
    all.page += 1;
    loadAll();
  });
  $('#all-prev').addEventListener('click', () => {
    if (all.page === 0) return;
    all.page -= 1;
    loadAll();
  });
}

/* --- shuffle ------------------------------------------------------------------ */

function setupShuffle() {
  if (me.role !== 'manager' && me.role !== 'admin') return;
  $('#shuffle-card').hidden = false;
  const msg = $('#shuffle-msg');
  $('#shuffle').addEventListener('click', async (e) => {
    say(msg, 'info', '');
    try {
      const r = await busy(e.currentTarget, () => post('/api/tasks/shuffle'));
      const n = Number(r.reassigned) || 0;
      say(msg, 'ok', n === 0 ? 'There were no open tasks to shuffle.' : `Shuffled: ${plural(n, 'open task was', 'open tasks were')} reassigned.`);
      msg.dataset.reassigned = String(n);
      refreshAll();
    } catch (err) {
      sayError(msg, err);
    }
  });
}

function refreshAll(opts = {}) {
  refreshMine();
  loadAll(opts);
}

async function loadNames() {
  if (me.role !== 'admin') return;
  try {
    const r = await get('/api/accounts?limit=500');
    for (const a of r.items || []) names.set(a.id, a.name || a.email);
  } catch {
    /* names are a nicety: ids are shown instead */
  }
}

async function main() {
  me = await boot('/tracker');
  $('#greeting').textContent = `Hello, ${me.name || me.email}. Here is what is on your perch.`;
  setupCreate();
  setupShuffle();
  setupAll();
  $('#mine-open').addEventListener('click', () => { mine.view = 'open'; renderMine(); });
  $('#mine-done').addEventListener('click', () => { mine.view = 'done'; renderMine(); });
  await loadNames();
  refreshAll();
}

main().catch(() => { /* shown by boot */ });
