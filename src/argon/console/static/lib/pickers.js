// Branch, database and role pickers shared by the SQL editor, the tables view and the
// schema diff.  They read Neon's API (branches, databases, roles of a branch).

import { h, clear } from './dom.js';
import { listAll } from './api.js';

export async function loadBranches(ctx) {
  return listAll(ctx.api, `/projects/${ctx.projectId}/branches`, 'branches', 10000);
}

function options(select, items, selected) {
  clear(select).append(...items.map(([value, label]) => h('option', { value, selected: value === selected }, label)));
  if (selected && items.some(([v]) => v === selected)) select.value = selected;
}

// A row of three selects; `onChange({branchId, database, role})` after any change.
// Returns {el, value(), ready} where ready resolves once the first choices are loaded.
export function branchDbRole(ctx, branches, { initialBranch, testid = '', onChange = () => {} } = {}) {
  const pre = testid ? `${testid}-` : '';
  const branch = h('select', { testid: `${pre}branch-picker`, 'aria-label': 'Branch' });
  const database = h('select', { testid: `${pre}database-picker`, 'aria-label': 'Database' });
  const role = h('select', { testid: `${pre}role-picker`, 'aria-label': 'Role' });
  const def = branches.find((b) => b.id === initialBranch) || branches.find((b) => b.default) || branches[0];
  options(branch, branches.map((b) => [b.id, b.name]), def && def.id);
  let dbs = [];
  const value = () => ({ branchId: branch.value, database: database.value, role: role.value || null });

  async function loadBranch() {
    if (!branch.value) return;
    const base = `/projects/${ctx.projectId}/branches/${branch.value}`;
    const [d, r] = await Promise.all([ctx.api('GET', `${base}/databases`), ctx.api('GET', `${base}/roles`)]);
    dbs = d.databases || [];
    const keep = dbs.some((x) => x.name === database.value) ? database.value : (dbs[0] && dbs[0].name);
    options(database, dbs.map((x) => [x.name, x.name]), keep);
    const roles = (r.roles || []).filter((x) => !x.name.startsWith('pg_'));
    const owner = (dbs.find((x) => x.name === database.value) || {}).owner_name;
    options(role, roles.map((x) => [x.name, x.name]), owner);
  }

  branch.addEventListener('change', async () => {
    try { await loadBranch(); } catch (err) { ctx.toast(err.message, 'error'); }
    onChange(value());
  });
  database.addEventListener('change', () => {
    const owner = (dbs.find((x) => x.name === database.value) || {}).owner_name;
    if (owner && [...role.options].some((o) => o.value === owner)) role.value = owner;
    onChange(value());
  });
  role.addEventListener('change', () => onChange(value()));
  const el = h('span', { class: 'row pickers' },
    h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Branch'), branch),
    h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Database'), database),
    h('label', { class: 'row' }, h('span', { class: 'muted' }, 'Role'), role));
  return { el, value, ready: loadBranch(), branch, database, role };
}
