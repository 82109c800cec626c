// Charts of the monitoring page: line charts of one figure over time (uPlot), and a bar
// of active/idle states (inline SVG).  Points with a null value break the line (the
// compute slept).

import { uPlot } from './vendor.js';

const NS = 'http://www.w3.org/2000/svg';
const PAD = { l: 56, r: 12, t: 12, b: 24 };

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function timeLabel(ms, span) {
  const d = new Date(ms);
  return span > 2 * 86400000
    ? d.toLocaleDateString(undefined, { month: 'short', day: '2-digit' }) + ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: span < 3600000 ? '2-digit' : undefined });
}

// A line chart of one figure over time, drawn by uPlot (vendored) on a canvas; its
// legend reads out the value under the cursor.  Returns {el, update(points, from, to),
// destroy()}: the page feeds it new points on every refresh instead of rebuilding it.
// points: [{t: ms, v: number|null}]; fmt formats a value for the axis and the readout.
export async function lineChart({ testid, fmt = (v) => String(v), color = '#0b7a5a', label = 'value' }) {
  const UPlot = await uPlot();
  const el = document.createElement('div');
  el.className = 'chart uplot-chart';
  el.dataset.testid = testid;
  el.dataset.points = '0';
  const empty = document.createElement('div');
  empty.className = 'chart-empty axis';
  empty.textContent = 'no data in this range';
  let range = [0, 1];
  const plot = new UPlot({
    width: 520,
    height: 170,
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: () => range },
      y: { range: (u, min, max) => [0, (max || 1) * 1.1] },
    },
    axes: [
      { stroke: '#98a2b3', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#eef0f3' } },
      { stroke: '#98a2b3', size: 78, grid: { stroke: '#eef0f3' }, ticks: { stroke: '#eef0f3' },
        values: (u, splits) => splits.map((v) => fmt(v)) },
    ],
    series: [
      { value: (u, v) => (v === null ? '' : new Date(v * 1000).toLocaleTimeString()) },
      { label, stroke: color, width: 1.6, fill: `${color}18`, spanGaps: false,
        points: { size: 4 }, value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)) },
    ],
  }, [[], []], el);
  el.append(empty);
  // follow the panel's width (the grid of charts reflows with the window)
  const resize = new ResizeObserver(() => {
    const width = Math.floor(el.clientWidth);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: 170 });
  });
  resize.observe(el);
  return {
    el,
    plot,
    update(points, from, to) {
      range = [from / 1000, to / 1000];
      const values = points.filter((p) => p.v !== null && p.v !== undefined);
      el.dataset.points = String(values.length);
      empty.hidden = values.length > 0;
      plot.setData([points.map((p) => p.t / 1000), points.map((p) => (p.v === undefined ? null : p.v))]);
    },
    destroy() { resize.disconnect(); plot.destroy(); },
  };
}

// states: [{t: ms, state: 'active'|'idle'}] sorted; each lasts until the next one.
export function stateChart({ testid, states, from, to, now = Date.now() }) {
  const h = 46; const W = 1200;   // wider than the line charts: it spans the page
  const svg = el('svg', { viewBox: `0 0 ${W} ${h}`, class: 'chart state-chart', 'data-testid': testid, role: 'img' });
  svg.dataset.points = String(states.length);
  const x = (t) => PAD.l + ((Math.min(Math.max(t, from), to) - from) / Math.max(1, to - from)) * (W - PAD.l - PAD.r);
  svg.append(el('rect', { x: PAD.l, y: 6, width: W - PAD.l - PAD.r, height: 18, class: 'state-none' }));
  // one bar per run of the same state
  const runs = states.filter((s, i) => i === 0 || s.state !== states[i - 1].state);
  runs.forEach((s, i) => {
    const end = i + 1 < runs.length ? runs[i + 1].t : Math.min(now, to);
    const x0 = x(s.t); const x1 = x(end);
    if (x1 - x0 <= 0) return;
    svg.append(el('rect', { x: x0, y: 6, width: Math.max(1, x1 - x0), height: 18, class: `state-${s.state}`, 'data-state': s.state }));
  });
  svg.append(el('text', { x: PAD.l - 6, y: 19, 'text-anchor': 'end', class: 'axis' }, 'state'),
    el('text', { x: PAD.l, y: h - 6, class: 'axis' }, timeLabel(from, to - from)),
    el('text', { x: W - PAD.r, y: h - 6, 'text-anchor': 'end', class: 'axis' }, timeLabel(to, to - from)));
  return svg;
}
