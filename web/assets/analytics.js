// analytics: /analytics (admins only) — today's management earnings and how
// many popugs are in the red; the most expensive task per day, week or
// month over a range (table and chart); earnings, accounts in the red and
// completed tasks day by day. Other roles get a readable refusal.

import { get, isMissingService, withQuery } from './api.js';
import { $, busy, errorText, fill, h, loads, say, table } from './dom.js';
import { barChart } from './chart.js';
import { addDays, dayLabel, dayShort, isDay, money, moneyClass, moneyShort, utcToday } from './format.js';
import { boot, refuse } from './shell.js';

let today = null;
const expensiveLoads = loads();
const daysLoads = loads();

function missingText(err) {
  return isMissingService(err)
    ? 'Analytics is not running on this server yet (the API answered “no such resource”).'
    : errorText(err);
}

function checkRange(from, to, msg) {
  if (!isDay(from) || !isDay(to)) {
    say(msg, 'error', 'Pick both days of the range.');
    return false;
  }
  if (from > to) {
    say(msg, 'error', '“From” must not be after “To”.');
    return false;
  }
  return true;
}

async function loadToday() {
  const r = await get('/api/analytics/today');
  today = isDay(r.day) ? r.day : today;
  const v = $('#an-earnings');
  v.textContent = money(r.management_earnings_cents);
  v.className = 'value ' + moneyClass(r.management_earnings_cents);
  $('#an-day').textContent = dayLabel(r.day);
  const n = Number(r.negative_accounts) || 0;
  $('#an-negative').textContent = String(n);
  $('#an-negative').className = 'value ' + (n > 0 ? 'neg' : '');
}

/* A period as the table shows it: a day, the week starting on a day, a month. */
function periodLong(p, period) {
  if (period === 'day' && isDay(p)) return dayLabel(p);
  if (period === 'week' && isDay(p)) return 'Week of ' + dayShort(p);
  if (period === 'month' && /^\d{4}-\d{2}$/.test(p)) {
    return new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(p + '-01T00:00:00Z'));
  }
  return String(p);
}

/* A period label such as "2024-03-04", "2024-W10" or "2024-03" made short for an axis. */
function periodShort(p, period) {
  if (period === 'day' && isDay(p)) return dayShort(p);
  if (period === 'week' && isDay(p)) return 'wk ' + dayShort(p);
  if (period === 'month' && /^\d{4}-\d{2}$/.test(p)) {
    return new Intl.DateTimeFormat(undefined, { month: 'short', year: '2-digit', timeZone: 'UTC' }).format(new Date(p + '-01T00:00:00Z'));
  }
  return String(p);
}

async function loadExpensive() {
  const msg = $('#exp-msg');
  const period = $('#exp-period').value;
  const from = $('#exp-from').value;
  const to = $('#exp-to').value;
  if (!checkRange(from, to, msg)) return;
  const t = expensiveLoads.start();
  try {
    const r = await busy($('#exp-show'), () => get(withQuery('/api/analytics/most-expensive', { period, from, to })));
    if (!expensiveLoads.current(t)) return;
    say(msg, 'error', '');
    const items = (r.items || []).slice().sort((a, b) => (String(a.period) < String(b.period) ? -1 : 1));
    const overall = r.overall && typeof r.overall === 'object' ? r.overall : null;
    $('#an-overall').textContent = overall ? money(overall.reward_cents) : '—';
    $('#an-overall-title').textContent = overall ? `${overall.title}${overall.jira_id ? ' · ' + overall.jira_id : ''}` : 'no completed task in the range';
    fill($('#exp-chart'), items.length
      ? barChart(items.map((d) => ({ label: periodShort(d.period, period), title: d.task_id ? `${periodLong(d.period, period)}: ${d.title}` : `${periodLong(d.period, period)}: no task completed`, value: Number(d.reward_cents) || 0 })),
        { label: `Highest reward per ${period}, ${from} to ${to}`, format: moneyShort, formatFull: money })
      : null);
    fill($('#exp-table'), items.length
      ? table([{ label: period === 'day' ? 'Day' : period === 'week' ? 'Week' : 'Month' }, { label: 'Task' }, { label: 'Jira' }, { label: 'Reward', num: true }],
        items.slice().reverse().map((d) => ({
          class: overall && overall.task_id === d.task_id ? 'highlight' : null,
          dataset: { task: d.task_id || '' },
          cells: [
            h('span', { class: 'nowrap', title: String(d.period) }, periodLong(d.period, period)),
            d.task_id ? h('span', { class: 'task-title' }, d.title || '—') : h('span', { class: 'hint' }, 'No task completed'),
            d.jira_id ? h('span', { class: 'badge jira' }, d.jira_id) : '—',
            d.task_id ? money(d.reward_cents) : '—',
          ],
        })), { label: 'Most expensive task per period', id: 'expensive' })
      : h('p', { class: 'empty' }, 'No task was completed in this range.'));
  } catch (err) {
    if (!expensiveLoads.current(t)) return;
    say(msg, 'error', missingText(err));
    fill($('#exp-chart'));
    fill($('#exp-table'));
  }
}

async function loadDays() {
  const msg = $('#an-days-msg');
  const from = $('#an-days-from').value;
  const to = $('#an-days-to').value;
  if (!checkRange(from, to, msg)) return;
  const t = daysLoads.start();
  try {
    const r = await busy($('#an-days-show'), () => get(withQuery('/api/analytics/days', { from, to })));
    if (!daysLoads.current(t)) return;
    say(msg, 'error', '');
    const items = (r.items || []).slice().sort((a, b) => (a.day < b.day ? -1 : 1));
    fill($('#an-days-chart'), items.length
      ? barChart(items.map((d) => ({ label: dayShort(d.day), title: dayLabel(d.day), value: Number(d.management_earnings_cents) || 0 })),
        { label: `Management earnings per day, ${from} to ${to}`, format: moneyShort, formatFull: money })
      : null);
    fill($('#an-days-table'), items.length
      ? table([{ label: 'Day' }, { label: 'Earnings', num: true }, { label: 'In the red', num: true }, { label: 'Completed', num: true }],
        items.slice().reverse().map((d) => ({
          class: d.day === today ? 'highlight' : null,
          dataset: { day: d.day },
          cells: [
            h('span', { class: 'nowrap' }, dayLabel(d.day)),
            { value: money(d.management_earnings_cents), class: moneyClass(d.management_earnings_cents) },
            String(d.negative_accounts ?? '—'),
            String(d.completed_tasks ?? '—'),
          ],
        })), { label: 'Analytics per day', id: 'an-days' })
      : h('p', { class: 'empty' }, 'No activity in this range.'));
  } catch (err) {
    if (!daysLoads.current(t)) return;
    say(msg, 'error', missingText(err));
    fill($('#an-days-chart'));
    fill($('#an-days-table'));
  }
}

async function main() {
  const me = await boot('/analytics');
  if (me.role !== 'admin') {
    $('#an-sub').textContent = '';
    refuse(me, 'Analytics', 'admins');
    return;
  }
  $('#an-sub').textContent = 'How the company is doing, and which tasks cost the most.';
  $('#analytics').hidden = false;
  try {
    await loadToday();
  } catch (err) {
    say($('#an-msg'), 'error', missingText(err));
  }
  const to = today || utcToday();
  $('#exp-to').value = to;
  $('#exp-from').value = addDays(to, -55);
  $('#an-days-to').value = to;
  $('#an-days-from').value = addDays(to, -13);
  $('#exp-form').addEventListener('submit', (e) => { e.preventDefault(); loadExpensive(); });
  $('#exp-period').addEventListener('change', () => {
    const p = $('#exp-period').value;
    $('#exp-from').value = addDays($('#exp-to').value || to, p === 'day' ? -13 : p === 'week' ? -55 : -364);
    loadExpensive();
  });
  $('#an-days-form').addEventListener('submit', (e) => { e.preventDefault(); loadDays(); });
  await Promise.all([loadExpensive(), loadDays()]);
}

main().catch(() => { /* shown by boot */ });
