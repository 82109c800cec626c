// SQL Editor: run statements on a branch's database as one of its roles, results as
// grids with column types, errors with their position, EXPLAIN as a plan tree, time
// travel (run at a past time on a temporary read-only compute), cancel, and the
// project's history of past queries (kept by Argon).

import { h, clear, fmtDate, localInputToIso, isoToLocalInput } from '../lib/dom.js';
import { resultGrid, useStyles } from '../lib/grid.js';
import { loadBranches, branchDbRole } from '../lib/pickers.js';
import { sqlEditor } from '../lib/sqleditor.js';

function newQueryId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, '');
  return `${Date.now().toString(16)}${Math.random().toString(16).slice(2)}`;
}

// 1-based character position -> {line, col} (1-based) in text.
export function lineCol(text, position) {
  const before = text.slice(0, Math.max(0, position - 1));
  const lines = before.split('\n');
  return { line: lines.length, col: lines[lines.length - 1].length + 1 };
}

function errorBox(err, query) {
  const parts = [h('div', { class: 'err-head' }, h('strong', {}, 'ERROR'), ' ',
    h('span', { testid: 'sql-error-message' }, err.message),
    h('span', { class: 'badge red', testid: 'sql-error-sqlstate' }, `SQLSTATE ${err.sqlstate}`))];
  if (err.position) {
    const { line, col } = lineCol(query, err.position);
    const src = query.split('\n')[line - 1] || '';
    parts.push(h('div', { testid: 'sql-error-position', dataset: { position: String(err.position) } },
      `at line ${line}, column ${col} (character ${err.position})`));
    parts.push(h('pre', { class: 'err-snippet' }, `${src}\n${' '.repeat(col - 1)}^`));
  }
  if (err.detail) parts.push(h('div', {}, h('span', { class: 'muted' }, 'Detail: '), err.detail));
  if (err.hint) parts.push(h('div', {}, h('span', { class: 'muted' }, 'Hint: '), err.hint));
  return h('div', { class: 'error-box sql-error', testid: 'sql-error' }, ...parts);
}

function planNode(node, depth = 0) {
  const bits = [];
  if (node['Relation Name']) bits.push(`on ${node['Relation Name']}`);
  if (node['Index Name']) bits.push(`using ${node['Index Name']}`);
  const cost = `cost=${node['Startup Cost']}..${node['Total Cost']} rows=${node['Plan Rows']}`;
  const actual = node['Actual Total Time'] !== undefined
    ? ` actual time=${node['Actual Startup Time']}..${node['Actual Total Time']} rows=${node['Actual Rows']} loops=${node['Actual Loops']}` : '';
  const extra = ['Filter', 'Index Cond', 'Hash Cond', 'Join Filter', 'Sort Key']
    .filter((k) => node[k]).map((k) => h('div', { class: 'plan-detail muted' }, `${k}: ${Array.isArray(node[k]) ? node[k].join(', ') : node[k]}`));
  return h('div', { class: 'plan-node', testid: 'plan-node', style: `margin-left:${depth * 18}px` },
    h('div', {}, h('strong', {}, node['Node Type']), ' ', bits.join(' '), ' ', h('span', { class: 'muted mono' }, cost + actual)),
    ...extra,
    ...(node.Plans || []).map((child) => planNode(child, depth + 1)));
}

function explainView(plan) {
  const top = Array.isArray(plan) ? plan[0] : plan;
  const meta = [];
  if (top && top['Planning Time'] !== undefined) meta.push(`Planning ${top['Planning Time']} ms`);
  if (top && top['Execution Time'] !== undefined) meta.push(`Execution ${top['Execution Time']} ms`);
  return h('div', { class: 'panel explain', testid: 'explain-plan' },
    h('h3', {}, 'Query plan'), top && top.Plan ? planNode(top.Plan) : h('pre', {}, JSON.stringify(plan, null, 2)),
    meta.length ? h('div', { class: 'muted' }, meta.join(' · ')) : null);
}

function resultsView(out) {
  const items = [];
  const shown = out.results.filter((r) => r.columns.length || r.command);
  for (const [i, r] of shown.entries()) {
    const summary = r.columns.length
      ? `${r.rows.length}${r.truncated ? ` of ${r.row_count}` : ''} row${r.rows.length === 1 ? '' : 's'}`
      : `${r.command}${r.row_count !== null ? ` ${r.row_count}` : ''}`;
    items.push(h('div', { class: 'result', testid: `result-${i}` },
      h('div', { class: 'muted result-head' }, h('span', { class: 'badge' }, r.command || 'result'), ' ', summary),
      r.columns.length ? resultGrid(r.columns, r.rows) : null));
  }
  return items;
}

export async function render(root, ctx) {
  useStyles();
  const branches = await loadBranches(ctx);
  if (!branches.length) { root.append(h('div', { class: 'empty' }, 'This project has no branches.')); return; }
  const pickers = branchDbRole(ctx, branches, { initialBranch: ctx.branchId, testid: 'sql' });
  const editor = await sqlEditor({ testid: 'sql-editor', value: ctx.params.get('q') || 'SELECT version();',
    placeholder: 'SQL (Ctrl+Enter runs, Ctrl+Space completes)', onRun: () => execute('run') });
  const run = h('button', { class: 'btn primary', testid: 'sql-run' }, 'Run');
  const explain = h('button', { class: 'btn', testid: 'sql-explain' }, 'Explain');
  const analyze = h('input', { type: 'checkbox', testid: 'sql-analyze' });
  const cancel = h('button', { class: 'btn danger', testid: 'sql-cancel', disabled: true }, 'Cancel');
  const travel = h('input', { type: 'checkbox', testid: 'sql-timetravel' });
  const when = h('input', { type: 'datetime-local', step: '1', testid: 'sql-timestamp', disabled: true,
    value: isoToLocalInput(new Date(Date.now() - 5 * 60000)) });
  travel.addEventListener('change', () => { when.disabled = !travel.checked; });
  const status = h('div', { class: 'muted sql-status', testid: 'sql-status' });
  const results = h('div', { class: 'sql-results', testid: 'sql-results' });
  const historyList = h('div', { class: 'history-list', testid: 'sql-history' });
  let running = null;

  async function loadHistory() {
    try {
      const data = await ctx.api('GET', `/console/projects/${ctx.projectId}/sql/history?limit=50`);
      clear(historyList).append(...(data.history.length ? data.history.map((e) => h('div', {
        class: `history-item ${e.status}`, testid: 'history-item', title: e.query,
        onclick: () => { editor.value = e.query; editor.focus(); },
      }, h('div', { class: 'mono history-query' }, e.query.length > 160 ? `${e.query.slice(0, 160)}…` : e.query),
      h('div', { class: 'muted history-meta' },
        h('span', { class: `badge ${e.status === 'ok' ? 'green' : 'red'}` }, e.status),
        e.mode !== 'run' ? h('span', { class: 'badge' }, e.mode) : null,
        e.at_time ? h('span', { class: 'badge amber' }, `at ${fmtDate(e.at_time)}`) : null,
        ` ${e.database} · ${e.role} · ${Math.round(e.duration_ms)} ms · ${fmtDate(e.started_at)}`))) : [h('div', { class: 'muted' }, 'No queries yet.')]));
    } catch (err) { ctx.toast(err.message, 'error'); }
  }

  async function execute(mode) {
    if (running) return;
    const { branchId, database, role } = pickers.value();
    const query = editor.value;
    if (!query.trim()) { ctx.toast('Type a query first.', 'error'); return; }
    const body = { query, database, role, query_id: newQueryId() };
    if (mode !== 'run') body.explain = mode;
    if (travel.checked) {
      const iso = localInputToIso(when.value);
      if (!iso) { ctx.toast('Pick a time for time travel.', 'error'); return; }
      body.timestamp = iso;
    }
    running = body.query_id;
    run.disabled = true; explain.disabled = true; cancel.disabled = false;
    status.textContent = travel.checked ? 'Starting a compute at that time and running…' : 'Running…';
    clear(results);
    try {
      const out = await ctx.api('POST', `/console/projects/${ctx.projectId}/branches/${branchId}/sql`, body);
      if (!ctx.isCurrent()) return;
      const rows = out.results.reduce((n, r) => n + (r.columns.length ? r.rows.length : 0), 0);
      status.textContent = `${out.error ? 'Failed' : 'Done'} in ${out.duration_ms} ms as ${out.role} on ${out.database}` +
        (out.at_time ? ` at ${fmtDate(out.at_time)}` : '') + (out.error ? '' : ` · ${rows} row${rows === 1 ? '' : 's'}`);
      if (out.truncated) results.append(h('div', { class: 'warn', testid: 'sql-truncated' }, out.truncated_message));
      if (out.error) {
        results.append(errorBox(out.error, query));
        if (out.error.position && editor.value === query) {   // mark the spot in the editor
          const at = out.error.position - 1;
          const end = query.slice(at).search(/[\s;,()]|$/);
          editor.select(at, at + Math.max(1, end));
        }
      }
      if (out.explain) results.append(explainView(out.explain));
      else results.append(...resultsView(out));
    } catch (err) {
      status.textContent = '';
      results.append(h('div', { class: 'error-box', testid: 'sql-request-error' }, err.message));
    } finally {
      running = null;
      run.disabled = false; explain.disabled = false; cancel.disabled = true;
      loadHistory();
    }
  }

  run.addEventListener('click', () => execute('run'));
  explain.addEventListener('click', () => execute(analyze.checked ? 'analyze' : 'plan'));
  cancel.addEventListener('click', async () => {
    if (!running) return;
    try {
      const res = await ctx.api('POST', `/console/projects/${ctx.projectId}/sql/cancel`, { query_id: running });
      if (!res.cancelled) ctx.toast('The query had already finished.');
    } catch (err) { ctx.toast(err.message, 'error'); }
  });

  root.append(
    h('h1', {}, 'SQL Editor'),
    h('div', { class: 'toolbar' }, pickers.el),
    h('div', { class: 'sql-layout' },
      h('div', { class: 'sql-main' },
        editor.el,
        h('div', { class: 'toolbar' }, run, explain,
          h('label', { class: 'row muted' }, analyze, 'ANALYZE'), cancel,
          h('span', { class: 'spacer' }),
          h('label', { class: 'row', title: 'Run against the branch as it was at this time (read-only)' },
            travel, 'Time travel to', when)),
        status, results),
      h('aside', { class: 'panel sql-history-panel' }, h('h3', {}, 'History'), historyList)));
  await pickers.ready;
  loadHistory();
}
