// dom: tiny helpers to build elements safely (text is always text, never
// parsed as HTML) and to show messages and busy states.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/* Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/* Show `text` in the message box `el` with a kind (error, ok, info, warn);
 * an empty text hides it. */
export function say(el, kind, text) {
  if (!el) return;
  el.className = 'msg ' + kind;
  el.textContent = text || '';
  el.hidden = !text;
}

/* Hide an error in `msgEl` as soon as the user edits any field of `form`:
 * it was about what they are now changing. Other kinds (a success) stay. */
export function clearOnEdit(form, msgEl) {
  form.addEventListener('input', () => {
    if (msgEl && !msgEl.hidden && msgEl.classList.contains('error')) say(msgEl, 'error', '');
  });
}

export function sayError(el, err) {
  say(el, 'error', errorText(err));
}

/* A readable sentence for any thrown thing. */
export function errorText(err) {
  if (!err) return 'Something went wrong.';
  if (err.name === 'ApiError') return err.readable();
  return err.message || String(err);
}

const busyState = new WeakMap(); // button -> {runs, was}: calls of busy() still running on it

/* Run `fn` with `button` disabled and marked busy; returns fn's result.
 * Calls may overlap (a change of a filter while the last load is still
 * out): the button comes back as it was before the first of them only when
 * the last one ends, never left disabled by one that saw it busy. */
export async function busy(button, fn) {
  if (button) {
    const st = busyState.get(button) || { runs: 0, was: button.disabled };
    st.runs += 1;
    busyState.set(button, st);
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await fn();
  } finally {
    const st = button && busyState.get(button);
    if (st && --st.runs === 0) {
      busyState.delete(button);
      button.disabled = st.was;
      button.removeAttribute('aria-busy');
    }
  }
}

/* For a view that may be loaded again before its last load answered:
 * const t = view.start() before asking; view.current(t) is false once a
 * newer load has begun, and a late answer is then dropped rather than drawn
 * over the newer one. */
export function loads() {
  let last = 0;
  return { start: () => ++last, current: (t) => t === last };
}

/* A table: columns [{label, num?, minor?}] (minor: left out on phones), rows of cell arrays (a cell is text, a
 * Node, or {value, class}). On narrow screens each row becomes a small card
 * of label: value lines (class "stacked"; opts.stacked = false keeps rows). */
export function table(columns, rows, opts = {}) {
  const head = h('tr', null, columns.map((c) =>
    h('th', { scope: 'col', class: [c.num ? 'num' : '', c.minor ? 'minor' : ''].join(' ').trim() || null }, c.label)));
  const body = h('tbody');
  for (const r of rows) {
    const cells = r.cells || r;
    const tr = h('tr', { class: r.class || null, dataset: r.dataset || null });
    cells.forEach((cell, i) => {
      const c = columns[i] || {};
      const isObj = cell && typeof cell === 'object' && !(cell instanceof Node) && !Array.isArray(cell);
      const cls = [c.num ? 'num' : '', c.minor ? 'minor' : '', isObj && cell.class ? cell.class : ''].join(' ').trim() || null;
      tr.append(h(i === 0 && opts.rowHeader ? 'th' : 'td', {
        class: cls, scope: i === 0 && opts.rowHeader ? 'row' : null, 'data-label': c.label || null,
      }, isObj ? cell.value : cell));
    });
    body.append(tr);
  }
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': opts.label || null, class: opts.stacked === false ? null : 'stacked', id: opts.id || null }, opts.caption ? h('caption', { class: 'visually-hidden' }, opts.caption) : null,
      h('thead', null, head), body));
}
