// format: money in cents, times, business days (YYYY-MM-DD, handled as UTC
// calendar dates so no local offset shifts them).

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/* 1234 -> "$12.34", -500 -> "−$5.00" */
export function money(cents) {
  if (cents === null || cents === undefined || Number.isNaN(Number(cents))) return '—';
  const n = Number(cents);
  const text = usd.format(Math.abs(n) / 100);
  return n < 0 ? '−' + text : text;
}

/* A short money form for chart axes: $1.2k, $35, −$4 */
export function moneyShort(cents) {
  const d = Number(cents) / 100;
  const a = Math.abs(d);
  const sign = d < 0 ? '−' : '';
  if (a >= 1e6) return sign + '$' + trim(a / 1e6) + 'M';
  if (a >= 1e3) return sign + '$' + trim(a / 1e3) + 'k';
  return sign + '$' + trim(a);
}

function trim(x) {
  return (Math.round(x * 10) / 10).toString();
}

export function moneyClass(cents) {
  return Number(cents) < 0 ? 'neg' : '';
}

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const tf = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

export function dateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dtf.format(d);
}

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : tf.format(d);
}

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
export const isDay = (s) => typeof s === 'string' && DAY_RE.test(s) && !Number.isNaN(Date.parse(s + 'T00:00:00Z'));

/* "2024-03-09" plus n days */
export function addDays(day, n) {
  const d = new Date(day + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/* today as the browser sees it in UTC: only a fallback until the server's
 * business day is known. */
export function utcToday() {
  return new Date().toISOString().slice(0, 10);
}

const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', timeZone: 'UTC' });
export function dayLabel(day) {
  return isDay(day) ? dayFmt.format(new Date(day + 'T00:00:00Z')) : String(day);
}

const shortDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
export function dayShort(day) {
  return isDay(day) ? shortDay.format(new Date(day + 'T00:00:00Z')) : String(day);
}

/* A wait in seconds as a person says it: "40 seconds", "about a minute",
 * "about 15 minutes", "about 2 hours". */
export function waitText(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return plural(s, 'second', 'seconds');
  const min = Math.round(s / 60);
  if (min <= 1) return 'about a minute';
  if (min < 90) return `about ${min} minutes`;
  const hr = Math.round(min / 60);
  return hr <= 1 ? 'about an hour' : `about ${hr} hours`;
}

/* "3f2a…9c1d" for a UUID */
export function shortId(id) {
  if (!id || typeof id !== 'string') return '—';
  return id.length > 12 ? id.slice(0, 8) + '…' + id.slice(-4) : id;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
