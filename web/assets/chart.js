// chart: a small hand-drawn SVG bar chart (negative values go below a zero
// line). It is drawn at the width of its box and redrawn when that changes,
// so text stays readable from 360 px phones to desktops. The numbers are
// always in a table next to it as well; the chart is a picture of them.

import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/* A "nice" step (1, 2, 2.5, 5 × 10^k) covering `span` in about `n` steps. */
function niceStep(span, n) {
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function draw(box, items, opts, width) {
  const W = Math.max(280, Math.round(width));
  const H = opts.height || (W < 480 ? 200 : 240);
  const m = { top: 14, right: 8, bottom: 30, left: W < 480 ? 44 : 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const vals = items.map((d) => Number(d.value) || 0);
  let lo = Math.min(0, ...vals);
  let hi = Math.max(0, ...vals);
  if (lo === hi) hi = lo + 100;
  const step = niceStep(hi - lo, 4);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const y = (v) => m.top + ph - ((v - lo) / (hi - lo)) * ph;

  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': opts.label || 'Chart',
  });
  svg.append(s('title', {}, opts.label || 'Chart'));
  for (let v = lo; v <= hi + step / 2; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    svg.append(s('line', { class: v === 0 ? 'zero-line' : 'grid-line', x1: m.left, x2: W - m.right, y1: yy, y2: yy }));
    svg.append(s('text', { x: m.left - 6, y: yy + 4, 'text-anchor': 'end' }, opts.format(v)));
  }
  const n = Math.max(1, items.length);
  const band = pw / n;
  const bw = Math.max(2, Math.min(44, band * 0.68));
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(pw / 58))));
  items.forEach((d, i) => {
    const v = vals[i];
    const cx = m.left + band * i + band / 2;
    const y0 = y(0);
    const y1 = y(v);
    const top = Math.min(y0, y1);
    const bh = Math.max(v === 0 ? 0 : 1, Math.abs(y1 - y0));
    const rect = s('rect', {
      class: 'bar' + (v < 0 ? ' neg' : ''), x: (cx - bw / 2).toFixed(1), y: top.toFixed(1),
      width: bw.toFixed(1), height: bh.toFixed(1), rx: Math.min(3, bw / 4),
    });
    rect.append(s('title', {}, `${d.title || d.label}: ${opts.formatFull(v)}`));
    svg.append(rect);
    // every `every`-th bar counted back from the last, so the latest one is always named
    if ((n - 1 - i) % every === 0) {
      // the last label ends at the edge rather than being cut there (about 6 px a character at 11 px)
      const cut = cx + String(d.label).length * 3.2 > W - 1;
      svg.append(s('text', { class: 'x-label', x: cut ? W - 1 : cx, y: H - m.bottom + 16, 'text-anchor': cut ? 'end' : 'middle' }, d.label));
    }
  });
  if (!items.length) {
    svg.append(s('text', { x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle' }, 'No data in this range'));
  }
  box.replaceChildren(svg);
}

/* items: [{label, value, title?}] ; opts: {label, format(v), formatFull(v)} */
export function barChart(items, opts) {
  const o = { format: String, formatFull: String, ...opts };
  const box = h('div', { class: 'chart' });
  let lastWidth = 0;
  const render = (w) => {
    lastWidth = w;
    draw(box, items, o, w);
  };
  if (typeof ResizeObserver === 'function') {
    const ro = new ResizeObserver((entries) => {
      const w = entries[0].contentRect.width;
      // redraw in the next frame, not inside the observer's own callback
      if (w > 0 && Math.abs(w - lastWidth) > 8) requestAnimationFrame(() => render(w));
    });
    ro.observe(box);
  }
  // a first drawing before layout is known, replaced once the box has a width
  render(640);
  return box;
}
