// Schema diff: the schema of a branch against another branch (by default its parent) or
// against itself at a past time, side by side.  Uses Neon's compare_schema call.

import { h, clear, localInputToIso, isoToLocalInput } from '../lib/dom.js';
import { qs } from '../lib/api.js';
import { useStyles } from '../lib/grid.js';
import { loadBranches } from '../lib/pickers.js';

// A unified diff -> rows [{left: {n, text, kind}|null, right: ...}] and hunk separators.
export function sideBySide(diff) {
  const rows = [];
  let ln = 0; let rn = 0; let dels = []; let adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i += 1) {
      rows.push({ left: dels[i] || null, right: adds[i] || null });
    }
    dels = []; adds = [];
  };
  for (const line of diff.split('\n')) {
    if (line.startsWith('---') || line.startsWith('+++')) continue;
    const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (m) { flush(); ln = Number(m[1]); rn = Number(m[2]); rows.push({ hunk: line }); continue; }
    if (line.startsWith('-')) dels.push({ n: ln++, text: line.slice(1), kind: 'del' });
    else if (line.startsWith('+')) adds.push({ n: rn++, text: line.slice(1), kind: 'add' });
    else if (line.startsWith(' ')) {
      flush();
      rows.push({ left: { n: ln++, text: line.slice(1), kind: 'ctx' }, right: { n: rn++, text: line.slice(1), kind: 'ctx' } });
    }
  }
  flush();
  return rows;
}

function cells(side, kind) {
  if (!side) return [h('td', { class: 'ln' }), h('td', { class: 'code empty-side' })];
  return [h('td', { class: 'ln' }, String(side.n)),
    h('td', { class: `code ${side.kind}`, testid: `diff-${kind}-line`, dataset: { kind: side.kind } }, side.text)];
}

export async function render(root, ctx) {
  useStyles();
  const branches = await loadBranches(ctx);
  if (!branches.length) { root.append(h('div', { class: 'empty' }, 'This project has no branches.')); return; }
  const byId = Object.fromEntries(branches.map((b) => [b.id, b]));
  const initial = byId[ctx.branchId] || branches.find((b) => b.parent_id) || branches[0];
  const opts = (sel) => branches.map((b) => h('option', { value: b.id, selected: b.id === sel }, b.name));
  const target = h('select', { testid: 'diff-branch' }, ...opts(initial.id));
  const base = h('select', { testid: 'diff-base' }, ...opts(initial.parent_id || initial.id));
  const database = h('select', { testid: 'diff-database' });
  const mode = h('select', { testid: 'diff-mode' },
    h('option', { value: 'branch' }, 'another branch'), h('option', { value: 'time' }, 'itself at a past time'));
  const when = h('input', { type: 'datetime-local', step: '1', testid: 'diff-timestamp', hidden: true,
    value: isoToLocalInput(new Date(Date.now() - 3600000)) });
  const compare = h('button', { class: 'btn primary', testid: 'diff-compare' }, 'Compare');
  const out = h('div', { testid: 'diff-output' });

  async function loadDatabases() {
    const d = await ctx.api('GET', `/projects/${ctx.projectId}/branches/${target.value}/databases`);
    const keep = database.value;
    clear(database).append(...(d.databases || []).map((x) => h('option', { value: x.name, selected: x.name === keep }, x.name)));
  }
  target.addEventListener('change', () => {
    const b = byId[target.value];
    if (b && b.parent_id) base.value = b.parent_id;
    loadDatabases().catch((err) => ctx.toast(err.message, 'error'));
  });
  mode.addEventListener('change', () => {
    base.hidden = mode.value !== 'branch';
    when.hidden = mode.value !== 'time';
  });

  compare.addEventListener('click', async () => {
    const params = { db_name: database.value };
    let baseLabel;
    if (mode.value === 'time') {
      const iso = localInputToIso(when.value);
      if (!iso) { ctx.toast('Pick a time.', 'error'); return; }
      params.base_branch_id = target.value;
      params.base_timestamp = iso;
      baseLabel = `${byId[target.value].name} at ${new Date(iso).toLocaleString()}`;
    } else {
      params.base_branch_id = base.value;
      baseLabel = byId[base.value].name;
    }
    compare.disabled = true;
    clear(out).append(h('div', { class: 'loading' }, 'Dumping both schemas…'));
    try {
      const res = await ctx.api('GET', `/projects/${ctx.projectId}/branches/${target.value}/compare_schema${qs(params)}`);
      clear(out);
      if (!res.diff) {
        out.append(h('div', { class: 'empty', testid: 'diff-same' }, 'The schemas are the same.'));
        return;
      }
      const rows = sideBySide(res.diff);
      const adds = rows.filter((r) => r.right && r.right.kind === 'add').length;
      const dels = rows.filter((r) => r.left && r.left.kind === 'del').length;
      out.append(h('div', { class: 'muted', testid: 'diff-summary' }, `${adds} line${adds === 1 ? '' : 's'} added, ${dels} removed`),
        h('table', { class: 'diff-table', testid: 'diff-view' },
          h('colgroup', {}, h('col', { class: 'ln-col' }), h('col', {}), h('col', { class: 'ln-col' }), h('col', {})),
          h('thead', {}, h('tr', {}, h('th', { colspan: 2, testid: 'diff-left' }, `${baseLabel} / ${database.value}`),
            h('th', { colspan: 2, testid: 'diff-right' }, `${byId[target.value].name} / ${database.value}`))),
          h('tbody', {}, ...rows.map((r) => (r.hunk
            ? h('tr', { class: 'hunk' }, h('td', { colspan: 4, class: 'mono muted' }, r.hunk))
            : h('tr', {}, ...cells(r.left, 'left'), ...cells(r.right, 'right')))))));
    } catch (err) {
      clear(out).append(h('div', { class: 'error-box', testid: 'diff-error' }, err.message));
    } finally { compare.disabled = false; }
  });

  root.append(h('h1', {}, 'Schema diff'),
    h('div', { class: 'toolbar' },
      h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Branch'), target),
      h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Database'), database),
      h('label', { class: 'row' }, h('span', { class: 'muted' }, 'compared with'), mode, base, when),
      compare),
    out);
  await loadDatabases();
}
