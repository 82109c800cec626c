// Monitoring: per endpoint charts of the figures Argon records (control/monitoring.py):
// CPU, memory, connections, queries per second, rows written, WAL, replica lag, and the
// history of active/idle.  Refreshes while the page is open.

import { h, clear, fmtBytes } from '../lib/dom.js';
import { qs } from '../lib/api.js';
import { useStyles } from '../lib/grid.js';
import { lineChart, stateChart } from '../lib/chart.js';

const RANGES = [['5m', 5 * 60000], ['15m', 15 * 60000], ['1h', 3600000], ['6h', 6 * 3600000], ['24h', 86400000], ['7d', 7 * 86400000]];
const num = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0');

const CHARTS = [
  ['cpu', 'CPU', 'cpu_percent', (v) => `${num(v)} %`],
  ['memory', 'Memory', 'memory_bytes', fmtBytes],
  ['connections', 'Connections', 'connections', num],
  ['qps', 'Queries per second', 'qps', num],
  ['rows', 'Rows written per second', 'rows_written_per_s', num],
  ['wal', 'WAL written per second', 'wal_bytes_per_s', (v) => `${fmtBytes(Math.round(v))}/s`],
  ['lag', 'Replica lag', 'replica_lag_bytes', fmtBytes],
];

export async function render(root, ctx) {
  useStyles();
  const [eps, brs] = await Promise.all([ctx.api('GET', `/projects/${ctx.projectId}/endpoints`),
    ctx.api('GET', `/projects/${ctx.projectId}/branches`)]);
  const endpoints = eps.endpoints || [];
  const names = Object.fromEntries((brs.branches || []).map((b) => [b.id, b.name]));
  if (!endpoints.length) { root.append(h('h1', {}, 'Monitoring'), h('div', { class: 'empty' }, 'This project has no computes.')); return; }
  const initial = endpoints.find((e) => e.branch_id === ctx.branchId) || endpoints[0];
  const picker = h('select', { testid: 'monitoring-endpoint' }, ...endpoints.map((e) => h('option', {
    value: e.id, selected: e.id === initial.id }, `${e.id} (${names[e.branch_id] || e.branch_id}, ${e.type})`)));
  let range = 3600000;   // 1h
  const buttons = RANGES.map(([label, ms]) => h('button', { class: `btn small${ms === range ? ' primary' : ''}`,
    testid: `range-${label}`, dataset: { ms: String(ms) } }, label));
  for (const b of buttons) {
    b.addEventListener('click', () => {
      range = Number(b.dataset.ms);
      for (const o of buttons) o.classList.toggle('primary', o === b);
      refresh();
    });
  }
  const status = h('span', { class: 'muted', testid: 'monitoring-status' });
  const statePanel = h('div', { class: 'panel chart-panel wide' }, h('h3', {}, 'Active / idle'));
  const charts = await Promise.all(CHARTS.map(async ([id, title, key, fmt]) => {
    const now = h('span', { class: 'muted chart-now', testid: `chart-${id}-now` });
    const chart = await lineChart({ testid: `chart-${id}`, fmt, label: title });
    return { id, key, fmt, now, chart, panel: h('div', { class: 'panel chart-panel' }, h('h3', {}, title, now), chart.el) };
  }));
  const grid = h('div', { class: 'charts', testid: 'charts' }, statePanel, ...charts.map((c) => c.panel));
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    const to = Date.now(); const from = to - range;
    try {
      const data = await ctx.api('GET', `/console/projects/${ctx.projectId}/endpoints/${picker.value}/metrics${qs({
        from: new Date(from).toISOString(), to: new Date(to).toISOString(), max_points: 600 })}`);
      if (!ctx.isCurrent()) return;
      const samples = data.samples.map((s) => ({ ...s, t: Date.parse(s.at) }));
      const active = samples.filter((s) => s.state === 'active');
      status.textContent = `${samples.length} sample${samples.length === 1 ? '' : 's'} · every ${data.interval_seconds} s`;
      statePanel.querySelector('svg')?.remove();
      statePanel.append(stateChart({ testid: 'chart-state', states: samples.map((s) => ({ t: s.t, state: s.state })), from, to }));
      for (const c of charts) {
        const last = [...active].reverse().find((s) => s[c.key] !== null);
        c.now.textContent = last ? ` ${c.fmt(last[c.key])}` : '';
        c.chart.update(samples.map((s) => ({ t: s.t, v: s.state === 'active' ? s[c.key] : null })), from, to);
      }
      timer = setTimeout(() => {
        if (ctx.isCurrent() && document.body.contains(root)) refresh();
        else for (const c of charts) c.chart.destroy();   // the page was left
      }, Math.max(2, data.interval_seconds) * 1000);
    } catch (err) { ctx.toast(err.message, 'error'); }
  }
  picker.addEventListener('change', refresh);
  root.append(h('h1', {}, 'Monitoring'),
    h('div', { class: 'toolbar' }, h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Compute'), picker),
      ...buttons, h('span', { class: 'spacer' }), status),
    grid, await exportPanel(ctx));
  await refresh();
}

// The project's OpenTelemetry export: where the same figures are pushed (OTLP/HTTP).
async function exportPanel(ctx) {
  const base = `/console/projects/${ctx.projectId}/otel`;
  const endpoint = h('input', { type: 'text', testid: 'otel-endpoint', placeholder: 'https://otlp.example.com:4318', size: 40 });
  const token = h('input', { type: 'password', testid: 'otel-token', placeholder: 'Bearer token (optional)', autocomplete: 'off' });
  const service = h('input', { type: 'text', testid: 'otel-service-name', placeholder: 'service.name', value: 'argon' });
  const state = h('div', { class: 'muted', testid: 'otel-status' });
  const save = h('button', { class: 'btn primary', testid: 'otel-save' }, 'Save');
  const remove = h('button', { class: 'btn', testid: 'otel-remove' }, 'Remove');
  const show = (otel) => {
    remove.disabled = !otel;
    if (!otel) { state.textContent = 'Not exporting.'; return; }
    endpoint.value = otel.endpoint;
    if (otel.resource_attributes['service.name']) service.value = otel.resource_attributes['service.name'];
    token.placeholder = otel.has_bearer_token ? 'token kept (type to replace)' : 'Bearer token (optional)';
    state.textContent = `Pushing to ${otel.metrics_url}` + (otel.last_push_at ? ` · last push ${new Date(otel.last_push_at).toLocaleTimeString()}` : ' · no push yet') +
      (otel.last_error ? ` · last error: ${otel.last_error}` : '');
  };
  save.addEventListener('click', async () => {
    try {
      const body = { endpoint: endpoint.value.trim(), resource_attributes: service.value.trim() ? { 'service.name': service.value.trim() } : {} };
      if (token.value) body.bearer_token = token.value;
      show((await ctx.api('PUT', base, body)).otel);
      token.value = '';
      ctx.toast('Export saved.');
    } catch (err) { ctx.toast(err.message, 'error'); }
  });
  remove.addEventListener('click', async () => {
    try { await ctx.api('DELETE', base); show(null); ctx.toast('Export removed.'); } catch (err) { ctx.toast(err.message, 'error'); }
  });
  try { show((await ctx.api('GET', base)).otel); } catch (err) { state.textContent = err.message; }
  return h('div', { class: 'panel', testid: 'otel-panel', style: 'margin-top:16px' },
    h('h3', {}, 'OpenTelemetry export'),
    h('p', { class: 'muted' }, 'Push these figures of every running compute of the project to an OTLP/HTTP endpoint (the OpenTelemetry SDK\'s protobuf exporter), as Neon\'s OpenTelemetry integration does.'),
    h('div', { class: 'toolbar' }, endpoint, token, service, save, remove), state);
}
