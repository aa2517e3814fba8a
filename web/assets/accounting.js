// accounting: /accounting — for everyone their balance now and their audit
// log of a day; for admins and accountants today's management earnings,
// earnings per day (table and chart), any account's log and the price of a
// task; for admins closing a day.

import { get, isMissingService, post, withQuery } from './api.js';
import { $, busy, clearOnEdit, errorText, fill, h, loads, say, sayError, table } from './dom.js';
import { barChart } from './chart.js';
import { UUID_RE, addDays, dayLabel, dayShort, isDay, money, moneyClass, moneyShort, plural, shortId, time, utcToday } from './format.js';
import { boot } from './shell.js';

const RANGE_DAYS = 14;
let me = null;
let today = null; // the server's business day, once known
const mineLoads = loads();
const daysLoads = loads();
const accounts = new Map(); // id -> {name, email, role} (admin only)

function missingText(err) {
  return isMissingService(err)
    ? 'Accounting is not running on this server yet (the API answered “no such resource”).'
    : errorText(err);
}

/* --- entries (an audit log) ------------------------------------------------- */

const KIND = { debit: 'Fee', credit: 'Reward', payout: 'Payout' };

function signed(e) {
  const a = Math.abs(Number(e.amount_cents) || 0);
  return e.kind === 'credit' ? a : -a;
}

function entriesTable(entries, id) {
  if (!entries.length) return h('p', { class: 'empty' }, 'No entries on this day.');
  const canPrice = me.role === 'admin' || me.role === 'accountant';
  const rows = entries.map((e) => ({
    dataset: { entry: e.id || '' },
    cells: [
      h('span', { class: 'nowrap', title: e.created_at || '' }, time(e.created_at)),
      h('span', { class: `badge ${e.kind}` }, KIND[e.kind] || e.kind),
      { value: money(signed(e)), class: signed(e) < 0 ? 'neg' : 'pos' },
      h('span', null, e.description ? e.description.charAt(0).toUpperCase() + e.description.slice(1) : '—'),
      e.task_id
        ? (canPrice ? priceButton(e.task_id) : h('span', { class: 'mono', title: e.task_id }, shortId(e.task_id)))
        : '—',
    ],
  }));
  // on phones the kind (the amount's sign tells it) and, for popugs, the task id are left out
  return table([{ label: 'Time' }, { label: 'Kind', minor: true }, { label: 'Amount', num: true }, { label: 'Description' },
    { label: 'Task', minor: !canPrice }],
    rows, { label: 'Audit log', id });
}

/* A task id that, pressed, shows the task's price under its row. */
function priceButton(taskId) {
  const b = h('button', { type: 'button', class: 'link mono', title: `Show the price of task ${taskId}`, 'aria-expanded': 'false' }, shortId(taskId));
  b.addEventListener('click', async () => {
    const tr = b.closest('tr');
    const next = tr.nextElementSibling;
    if (next && next.classList.contains('details-row')) {
      next.remove();
      b.setAttribute('aria-expanded', 'false');
      return;
    }
    const cell = h('td', { colspan: 5 }, 'Loading the price…');
    tr.after(h('tr', { class: 'details-row' }, cell));
    b.setAttribute('aria-expanded', 'true');
    try {
      const [p, t] = await Promise.all([
        get(`/api/accounting/tasks/${encodeURIComponent(taskId)}`),
        get(`/api/tasks/${encodeURIComponent(taskId)}`).catch(() => null),
      ]);
      fill(cell, t ? h('strong', null, t.title, ' ') : null,
        `Assign fee ${money(p.assign_fee_cents)} · reward ${money(p.reward_cents)} · rules ${p.rules_version || '—'} · task ${taskId}`);
    } catch (err) {
      fill(cell, h('span', { class: 'neg' }, errorText(err)));
    }
  });
  return b;
}

function dayNet(entries) {
  return entries.reduce((s, e) => s + (e.kind === 'payout' ? 0 : signed(e)), 0);
}

/* --- my balance ---------------------------------------------------------- */

async function loadMine(day) {
  const msg = $('#my-msg');
  const t = mineLoads.start();
  try {
    const r = await get(withQuery('/api/accounting/me', { day }));
    if (!mineLoads.current(t)) return;
    say(msg, 'error', '');
    if (!today && isDay(r.day) && !day) today = r.day;
    if (!$('#my-day').value && isDay(r.day)) $('#my-day').value = r.day;
    const bal = $('#my-balance');
    bal.textContent = money(r.balance_cents);
    bal.className = 'value ' + moneyClass(r.balance_cents);
    $('#my-balance-note').textContent = Number(r.balance_cents) < 0
      ? 'In the red: carried over to the next day.'
      : 'Paid out when the day closes.';
    const entries = r.entries || [];
    const net = dayNet(entries);
    $('#my-day-net').textContent = money(net);
    $('#my-day-net').className = 'value ' + moneyClass(net);
    $('#my-day-count').textContent = `${plural(entries.length, 'entry', 'entries')} on ${dayLabel(r.day)}`;
    fill($('#my-entries'), entriesTable(entries, 'my-entries-table'));
  } catch (err) {
    if (!mineLoads.current(t)) return;
    say(msg, 'error', missingText(err));
    fill($('#my-entries'));
  }
}

function setupMine() {
  $('#my-card').hidden = false;
  $('#my-day').addEventListener('change', () => {
    const v = $('#my-day').value;
    if (v && !isDay(v)) return;
    loadMine(v || undefined);
  });
  $('#my-form').addEventListener('submit', (e) => e.preventDefault());
}

/* --- company: today, days ---------------------------------------------------- */

async function loadToday() {
  const r = await get('/api/accounting/today');
  today = isDay(r.day) ? r.day : today;
  const v = $('#today-earnings');
  v.textContent = money(r.management_earnings_cents);
  v.className = 'value ' + moneyClass(r.management_earnings_cents);
  $('#today-day').textContent = dayLabel(r.day);
  return r;
}

function seenAccount(id) {
  if (!id || accounts.has(id)) return;
  accounts.set(id, null);
  $('#acct-ids').append(h('option', { value: id }, 'seen as a task assignee'));
}

async function loadDays() {
  const msg = $('#days-msg');
  const from = $('#days-from').value;
  const to = $('#days-to').value;
  if (!isDay(from) || !isDay(to)) {
    say(msg, 'error', 'Pick both days of the range.');
    return;
  }
  if (from > to) {
    say(msg, 'error', '“From” must not be after “To”.');
    return;
  }
  const t = daysLoads.start();
  try {
    const r = await busy($('#days-show'), () => get(withQuery('/api/accounting/days', { from, to })));
    if (!daysLoads.current(t)) return;
    say(msg, 'error', '');
    const items = (r.items || []).slice().sort((a, b) => (a.day < b.day ? -1 : 1));
    const sum = (k) => items.reduce((s, d) => s + (Number(d[k]) || 0), 0);
    const earn = sum('management_earnings_cents');
    $('#range-earnings').textContent = money(earn);
    $('#range-earnings').className = 'value ' + moneyClass(earn);
    const active = items.filter((d) => ['debits_cents', 'credits_cents', 'payouts_cents'].some((k) => Number(d[k]))).length;
    $('#range-days').textContent = `${dayShort(from)} – ${dayShort(to)} · ${plural(active, 'day', 'days')} with activity`;
    $('#range-payouts').textContent = money(sum('payouts_cents'));
    $('#range-closed').textContent = `${items.filter((d) => d.closed).length} of ${items.length} closed`;
    fill($('#days-chart'), items.length
      ? barChart(items.map((d) => ({ label: dayShort(d.day), title: dayLabel(d.day), value: Number(d.management_earnings_cents) || 0 })),
        { label: `Management earnings per day, ${from} to ${to}`, format: moneyShort, formatFull: money })
      : null);
    fill($('#days-table'), items.length
      ? table([{ label: 'Day' }, { label: 'Earnings', num: true }, { label: 'Fees', num: true, minor: true }, { label: 'Rewards', num: true, minor: true },
        { label: 'Payouts', num: true, minor: true }, { label: 'Status' }],
      items.slice().reverse().map((d) => ({
        class: d.day === today ? 'highlight' : null,
        dataset: { day: d.day },
        cells: [
          h('span', { class: 'nowrap' }, dayLabel(d.day), d.day === today ? h('span', { class: 'hint' }, ' · today') : null),
          { value: money(d.management_earnings_cents), class: moneyClass(d.management_earnings_cents) },
          money(d.debits_cents), money(d.credits_cents), money(d.payouts_cents),
          h('span', { class: `badge ${d.closed ? 'done' : 'open'}` }, d.closed ? 'Closed' : 'Open'),
        ],
      })), { label: 'Earnings per day', id: 'days' })
      : h('p', { class: 'empty' }, 'No activity in this range.'));
  } catch (err) {
    if (!daysLoads.current(t)) return;
    say(msg, 'error', missingText(err));
    fill($('#days-chart'));
    fill($('#days-table'));
  }
}

/* --- company: an account's log ------------------------------------------------- */

async function loadAccountChoices() {
  const hint = $('#acct-hint');
  if (me.role === 'admin') {
    hint.textContent = 'Pick an account by name or email, or paste its id.';
    try {
      const r = await get('/api/accounts?limit=500');
      const list = $('#acct-ids');
      for (const a of r.items || []) {
        accounts.set(a.id, a);
        list.append(h('option', { value: a.id }, `${a.name} · ${a.email} · ${a.role}`));
      }
    } catch (err) {
      hint.textContent = `Paste an account id. (The list of accounts could not be loaded: ${errorText(err)})`;
    }
    return;
  }
  hint.textContent = 'Paste an account id, or pick one seen as a task assignee.';
  try {
    const r = await get('/api/tasks?assignee=all&limit=500');
    for (const t of r.items || []) seenAccount(t.assignee_id);
  } catch {
    /* the suggestions are a nicety */
  }
}

function resolveAccount(text) {
  const v = text.trim();
  if (UUID_RE.test(v)) return v.toLowerCase();
  for (const [id, a] of accounts) if (a && (a.email === v || a.name === v)) return id;
  return null;
}

function accountName(id) {
  const a = accounts.get(id);
  return a ? `${a.name} (${a.email})` : id;
}

async function loadAccount(e) {
  e.preventDefault();
  const msg = $('#acct-msg');
  const id = resolveAccount($('#acct-id').value);
  if (!id) {
    $('#acct-id').setAttribute('aria-invalid', 'true');
    say(msg, 'error', 'Enter an account id (a UUID such as 0191c0de-…)' + (me.role === 'admin' ? ', or pick an account from the list.' : '.'));
    fill($('#acct-result')); // the last account's log would read as this one's
    $('#acct-id').focus();
    return;
  }
  $('#acct-id').removeAttribute('aria-invalid');
  const day = $('#acct-day').value || undefined;
  try {
    const r = await busy($('#acct-show'), () => get(withQuery(`/api/accounting/accounts/${encodeURIComponent(id)}`, { day })));
    say(msg, 'error', '');
    if (!$('#acct-day').value && isDay(r.day)) $('#acct-day').value = r.day;
    const entries = r.entries || [];
    fill($('#acct-result'),
      h('p', { id: 'acct-summary' }, h('strong', null, accountName(r.account_id || id)), h('br'),
        'Balance now ', h('strong', { class: moneyClass(r.balance_cents) }, money(r.balance_cents)),
        ` · ${plural(entries.length, 'entry', 'entries')} on ${dayLabel(r.day)}`),
      entriesTable(entries, 'acct-entries'));
  } catch (err) {
    say(msg, 'error', missingText(err));
    fill($('#acct-result'));
  }
}

/* --- admin: close a day ------------------------------------------------------ */

function setupClose() {
  if (me.role !== 'admin') return;
  $('#close-card').hidden = false;
  clearOnEdit($('#close-form'), $('#close-msg'));
  const ask = $('#close-ask');
  const confirmBox = $('#close-confirm');
  const msg = $('#close-msg');
  $('#close-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const day = $('#close-day').value;
    if (day && !isDay(day)) {
      say(msg, 'error', 'Pick a valid day, or leave it empty.');
      return;
    }
    $('#close-question').textContent = day
      ? `Close ${dayLabel(day)}${day === today ? ' (today)' : ''}? Positive balances are paid out now.`
      : 'Close the oldest open day up to yesterday? Positive balances are paid out now.';
    confirmBox.hidden = false;
    ask.disabled = true;
    $('#close-yes').focus();
  });
  $('#close-no').addEventListener('click', () => {
    confirmBox.hidden = true;
    ask.disabled = false;
    ask.focus();
  });
  $('#close-yes').addEventListener('click', async (e) => {
    const day = $('#close-day').value;
    try {
      const r = await busy(e.currentTarget, () => post('/api/accounting/close-day', day ? { day } : {}));
      const closed = (r && r.day) || day;
      if (r && r.changed === false) {
        say(msg, 'info', `${closed ? dayLabel(closed) : 'That day'} was already closed; nothing changed.`);
        return;
      }
      const parts = [];
      parts.push(closed ? `Closed ${dayLabel(closed)}.` : 'Day closed.');
      if (r && r.paid_cents !== undefined) parts.push(`Paid out ${money(r.paid_cents)}${r.paid_accounts !== undefined ? ` to ${plural(r.paid_accounts, 'account', 'accounts')}` : ''}.`);
      if (r && r.negative_accounts !== undefined) parts.push(`${plural(r.negative_accounts, 'account is', 'accounts are')} in the red.`);
      say(msg, 'ok', parts.join(' '));
      refreshCompany();
    } catch (err) {
      sayError(msg, err);
    } finally {
      confirmBox.hidden = true;
      ask.disabled = false;
    }
  });
}

async function refreshCompany() {
  try {
    await loadToday();
    say($('#company-msg'), 'error', '');
  } catch (err) {
    say($('#company-msg'), 'error', missingText(err));
  }
  await loadDays();
}

async function setupCompany() {
  $('#company').hidden = false;
  try {
    await loadToday();
  } catch (err) {
    say($('#company-msg'), 'error', missingText(err));
  }
  const to = today || utcToday();
  $('#days-to').value = to;
  $('#days-from').value = addDays(to, -(RANGE_DAYS - 1));
  $('#days-form').addEventListener('submit', (e) => {
    e.preventDefault();
    loadDays();
  });
  $('#acct-form').addEventListener('submit', loadAccount);
  $('#acct-id').addEventListener('input', () => $('#acct-id').removeAttribute('aria-invalid'));
  clearOnEdit($('#acct-form'), $('#acct-msg'));
  clearOnEdit($('#days-form'), $('#days-msg'));
  setupClose();
  await Promise.all([loadDays(), loadAccountChoices()]);
}

async function main() {
  me = await boot('/accounting');
  const manage = me.role === 'admin' || me.role === 'accountant';
  $('#acc-sub').textContent = manage
    ? 'What the company earned, day by day, and every account’s log.'
    : 'Your balance and every fee, reward and payout behind it.';
  if (manage) {
    // the company first; the own balance below (accountants get tasks too)
    await setupCompany();
    if (me.role !== 'admin') setupMine();
  } else {
    setupMine();
    $('#my-card').style.marginTop = '0';
  }
  if (!$('#my-card').hidden) await loadMine();
}

main().catch(() => { /* shown by boot */ });
