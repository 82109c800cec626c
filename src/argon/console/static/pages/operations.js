// Operations: the project's log of long work (Neon's listProjectOperations), newest
// first, with durations and failures; older pages on demand.

import { h, clear, fmtDate, fmtDuration } from '../lib/dom.js';

const PAGE = 100;

export async function render(root, ctx) {
  const pid = ctx.projectId;
  const tbody = h('tbody', { testid: 'operations-list' });
  const failedOnly = h('input', { type: 'checkbox', testid: 'operations-failed-only' });
  const more = h('button', { class: 'btn', testid: 'operations-more', hidden: true }, 'Older operations');
  const summary = h('span', { class: 'muted', testid: 'operations-summary' });
  const branchNames = new Map();
  let cursor = null;
  const all = [];
  root.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Operations'), summary, h('span', { class: 'spacer' }),
      h('label', { class: 'check' }, failedOnly, 'Failures only'),
      h('button', { class: 'btn', testid: 'operations-refresh', onclick: () => restart() }, 'Refresh')),
    h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ...['Action', 'Status', 'Branch', 'Compute', 'Started', 'Duration', 'Failures', 'Error']
        .map((c) => h('th', {}, c)))),
      tbody),
    h('div', { style: 'margin-top:12px' }, more));

  function draw() {
    const shown = failedOnly.checked ? all.filter((o) => o.status === 'failed' || o.status === 'error' || o.failures_count > 0) : all;
    const failures = all.filter((o) => o.status === 'failed' || o.status === 'error').length;
    summary.textContent = `${all.length} loaded, ${failures} failed`;
    if (!shown.length) {
      clear(tbody).append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No operations.')));
      return;
    }
    clear(tbody).append(...shown.map((o) => {
      const failed = o.status === 'failed' || o.status === 'error';
      return h('tr', { testid: `operation-row-${o.id}`, dataset: { status: o.status, action: o.action } },
        h('td', {}, o.action),
        h('td', {}, h('span', { class: `badge ${failed ? 'red' : o.status === 'finished' ? 'green' : 'amber'}` }, o.status)),
        h('td', {}, o.branch_id ? (branchNames.get(o.branch_id) || o.branch_id) : '—'),
        h('td', { class: 'mono' }, o.endpoint_id || '—'),
        h('td', {}, fmtDate(o.created_at)),
        h('td', { class: 'num', testid: 'operation-duration' }, fmtDuration(o.total_duration_ms)),
        h('td', { class: 'num' }, String(o.failures_count)),
        h('td', { class: failed ? 'error-text' : 'muted', style: 'white-space:normal;max-width:420px' }, o.error || ''));
    }));
  }

  async function loadPage() {
    const q = `/projects/${pid}/operations?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await ctx.api('GET', q);
    all.push(...page.operations);
    cursor = page.pagination && page.pagination.cursor;
    more.hidden = !cursor || page.operations.length < PAGE;
    draw();
  }

  async function restart() {
    all.length = 0; cursor = null;
    try { await loadPage(); } catch (err) { ctx.toast(err.message, 'error'); }
  }

  failedOnly.addEventListener('change', draw);
  more.addEventListener('click', async () => {
    more.disabled = true;
    try { await loadPage(); } catch (err) { ctx.toast(err.message, 'error'); }
    more.disabled = false;
  });
  const { branches } = await ctx.api('GET', `/projects/${pid}/branches?limit=10000`);
  for (const b of branches) branchNames.set(b.id, b.name);
  await loadPage();
}
