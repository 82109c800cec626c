// Branches: the project's branch tree (parents, states, sizes, expiry, protection) drawn
// in one pass from three requests, whatever the number of branches; a detail panel for
// the selected branch with its actions (create child, edit, set default, reset from
// parent, restore, delete).

import { h, clear, esc, field, dialog, fmtBytes, fmtDate, fmtDateShort, localInputToIso, isoToLocalInput } from '../lib/dom.js';
import { listAll, waitOperations } from '../lib/api.js';

export async function render(root, ctx) {
  const state = { ctx, root, branches: [], byId: new Map(), endpoints: new Map(), sizes: new Map(), selected: ctx.branchId };
  const search = h('input', { type: 'text', testid: 'branch-search', placeholder: 'Filter by name or id' });
  const count = h('span', { class: 'muted', testid: 'branch-count' });
  const tbody = h('div', { class: 'tree-body', testid: 'branch-tree', role: 'rowgroup' });
  const detail = h('aside', { class: 'detail panel', testid: 'branch-detail' });
  state.tbody = tbody; state.detail = detail; state.count = count;
  root.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Branches'), count, h('span', { class: 'spacer' }), search,
      h('button', { class: 'btn primary', testid: 'branch-create-open', onclick: () => openCreate(state) }, 'New branch')),
    h('div', { class: 'branches-layout' },
      h('div', { class: 'tree-wrap' }, h('div', { class: 'tree', testid: 'branch-table', role: 'table' },
        h('div', { class: 'tree-head', role: 'row' }, ...['Branch', 'State', 'Compute', 'Logical', 'History', 'Branched at', 'Expires']
          .map((c, i) => h('span', { class: i === 3 || i === 4 ? 'cell num' : 'cell', role: 'columnheader' }, c))),
        tbody)),
      detail));
  tbody.addEventListener('click', (e) => {
    const tr = e.target.closest('[data-id]');
    if (tr) select(state, tr.dataset.id);
  });
  search.addEventListener('input', () => filter(state, search.value.trim().toLowerCase()));
  await reload(state);
}

async function reload(state) {
  const { ctx } = state;
  const pid = ctx.projectId;
  const [branches, endpoints, sizes] = await Promise.all([
    listAll(ctx.api, `/projects/${pid}/branches`, 'branches', 10000),
    ctx.api('GET', `/projects/${pid}/endpoints`).then((r) => r.endpoints),
    ctx.api('GET', `/console/projects/${pid}/branch_sizes`).then((r) => r.branches).catch(() => []),
  ]);
  state.branches = branches;
  state.byId = new Map(branches.map((b) => [b.id, b]));
  state.endpoints = new Map();
  for (const ep of endpoints) {
    if (!state.endpoints.has(ep.branch_id)) state.endpoints.set(ep.branch_id, []);
    state.endpoints.get(ep.branch_id).push(ep);
  }
  state.sizes = new Map(sizes.map((s) => [s.branch_id, s]));
  if (!state.selected || !state.byId.has(state.selected)) {
    const def = branches.find((b) => b.default);
    state.selected = def ? def.id : (branches[0] && branches[0].id);
  }
  drawTree(state);
  drawDetail(state);
}

// Depth-first order with box-drawing prefixes: roots (default first), children by age.
function treeOrder(branches, byId) {
  const kids = new Map();
  const roots = [];
  for (const b of branches) {
    if (b.parent_id && byId.has(b.parent_id)) {
      if (!kids.has(b.parent_id)) kids.set(b.parent_id, []);
      kids.get(b.parent_id).push(b);
    } else roots.push(b);
  }
  const byAge = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0);
  roots.sort((a, b) => (b.default - a.default) || byAge(a, b));
  for (const list of kids.values()) list.sort(byAge);
  const out = [];
  const stack = roots.slice().reverse().map((b, i) => ({ b, depth: 0, prefix: '', last: i === 0 }));
  while (stack.length) {
    const { b, depth, prefix, last } = stack.pop();
    out.push({ b, depth, lead: depth === 0 ? '' : `${prefix}${last ? '└─ ' : '├─ '}` });
    const children = kids.get(b.id) || [];
    const childPrefix = depth === 0 ? '' : `${prefix}${last ? '   ' : '│  '}`;
    for (let i = children.length - 1; i >= 0; i -= 1) {
      stack.push({ b: children[i], depth: depth + 1, prefix: childPrefix, last: i === children.length - 1 });
    }
  }
  return out;
}

function stateBadge(s) {
  const cls = s === 'ready' ? 'green' : s === 'init' || s === 'resetting' ? 'amber' : 'red';
  return `<span class="badge ${cls}">${esc(s)}</span>`;
}

function computeCell(eps) {
  if (!eps || !eps.length) return '<span class="muted">none</span>';
  return eps.map((e) => `<span class="badge ${e.current_state === 'active' ? 'green' : ''}" title="${esc(e.id)}">${esc(e.type === 'read_only' ? 'ro ' : '')}${esc(e.current_state)}</span>`).join('');
}

function drawTree(state) {
  const rows = treeOrder(state.branches, state.byId);
  const html = new Array(rows.length);
  for (let i = 0; i < rows.length; i += 1) {
    const { b, depth, lead } = rows[i];
    const size = state.sizes.get(b.id);
    const point = b.parent_timestamp ? fmtDateShort(b.parent_timestamp) : (b.parent_lsn || '');
    html[i] = `<div role="row" class="tree-row${b.id === state.selected ? ' selected' : ''}" data-testid="branch-row-${esc(b.id)}" data-id="${esc(b.id)}" data-parent="${esc(b.parent_id || '')}" data-depth="${depth}" data-name="${esc(b.name.toLowerCase())}">`
      + `<span class="cell"><span class="tree-indent">${esc(lead)}</span><span class="tree-name" data-testid="branch-name">${esc(b.name)}</span>`
      + `${b.default ? '<span class="badge green" data-testid="branch-default">default</span>' : ''}`
      + `${b.protected ? '<span class="badge amber" data-testid="branch-protected">protected</span>' : ''}`
      + `${b.init_source === 'schema-only' ? '<span class="badge">schema only</span>' : ''}</span>`
      + `<span class="cell">${stateBadge(b.current_state)}</span>`
      + `<span class="cell">${computeCell(state.endpoints.get(b.id))}</span>`
      + `<span class="cell num">${fmtBytes(size ? size.logical_size : b.logical_size)}</span>`
      + `<span class="cell num">${size ? fmtBytes(size.history_size) : '—'}</span>`
      + `<span class="cell muted" title="${esc(b.parent_lsn || '')}">${esc(point)}</span>`
      + `<span class="cell">${b.expires_at ? `<span class="badge amber" data-testid="branch-expires" title="${esc(fmtDate(b.expires_at))}">${esc(fmtDateShort(b.expires_at))}</span>` : ''}</span></div>`;
  }
  state.tbody.innerHTML = html.join('');
  state.count.textContent = `${rows.length} branch${rows.length === 1 ? '' : 'es'}`;
}

function filter(state, text) {
  for (const tr of state.tbody.children) {
    tr.hidden = Boolean(text) && !tr.dataset.name.includes(text) && !tr.dataset.id.includes(text);
  }
}

function select(state, id) {
  const old = state.tbody.querySelector('.tree-row.selected');
  if (old) old.classList.remove('selected');
  const tr = state.tbody.querySelector(`[data-id="${CSS.escape(id)}"]`);
  if (tr) tr.classList.add('selected');
  state.selected = id;
  // The address names the branch without a new render (replaceState fires no hashchange).
  history.replaceState(null, '', `#/projects/${state.ctx.projectId}/branches/${id}`);
  drawDetail(state);
}

function drawDetail(state) {
  const b = state.byId.get(state.selected);
  const d = clear(state.detail);
  if (!b) { d.append(h('div', { class: 'empty' }, 'No branch selected.')); return; }
  const parent = b.parent_id ? state.byId.get(b.parent_id) : null;
  const size = state.sizes.get(b.id);
  const eps = state.endpoints.get(b.id) || [];
  const dl = h('dl', {},
    h('dt', {}, 'Id'), h('dd', { class: 'mono', testid: 'detail-id' }, b.id),
    h('dt', {}, 'Parent'), h('dd', { testid: 'detail-parent' }, parent ? parent.name : (b.parent_id || '—')),
    h('dt', {}, 'Branched at'), h('dd', {}, b.parent_timestamp ? fmtDate(b.parent_timestamp) : '—', b.parent_lsn ? ` (${b.parent_lsn})` : ''),
    h('dt', {}, 'State'), h('dd', {}, b.current_state),
    h('dt', {}, 'Created'), h('dd', {}, fmtDate(b.created_at)),
    h('dt', {}, 'Logical size'), h('dd', {}, fmtBytes(size ? size.logical_size : b.logical_size)),
    h('dt', {}, 'History'), h('dd', {}, size ? fmtBytes(size.history_size) : '—'),
    h('dt', {}, 'Protected'), h('dd', {}, b.protected ? 'yes' : 'no'),
    h('dt', {}, 'Expires'), h('dd', {}, b.expires_at ? fmtDate(b.expires_at) : 'never'),
    h('dt', {}, 'Last reset'), h('dd', {}, b.last_reset_at ? fmtDate(b.last_reset_at) : '—'),
    h('dt', {}, 'Computes'), h('dd', {}, eps.length ? eps.map((e) => `${e.id} (${e.current_state})`).join(', ') : 'none'));
  const act = (label, testid, fn, opts = {}) => h('button', { class: `btn small${opts.danger ? ' danger' : ''}`, testid, disabled: opts.disabled, onclick: fn }, label);
  d.append(h('h2', { testid: 'detail-name' }, b.name), dl, h('div', { class: 'actions' },
    act('New child', 'branch-child-open', () => openCreate(state, b.id)),
    act('Edit', 'branch-rename-open', () => openEdit(state, b)),
    act('Set as default', 'branch-set-default', () => setDefault(state, b), { disabled: b.default }),
    act('Reset from parent', 'branch-reset-open', () => openReset(state, b), { disabled: !b.parent_id }),
    act('Restore', 'branch-restore-open', () => openRestore(state, b)),
    h('a', { class: 'btn small', href: `#/projects/${state.ctx.projectId}/connect/${b.id}`, testid: 'branch-connect' }, 'Connect'),
    act('Delete', 'branch-delete-open', () => openDelete(state, b), { danger: true, disabled: b.default })));
}

// Runs a mutation, waits for its operations, reloads the tree and says what happened.
async function mutate(state, message, fn) {
  const res = await fn();
  await waitOperations(state.ctx.api, state.ctx.projectId, res && res.operations);
  await reload(state);
  state.ctx.toast(message);
  return res;
}

function branchOptions(state, selectedId) {
  return treeOrder(state.branches, state.byId).map(({ b, lead }) =>
    h('option', { value: b.id, selected: b.id === selectedId }, `${lead}${b.name}`));
}

// Point-in-time chooser: head, a time (with seconds) or an LSN.
function pointPicker(prefix, { allowHead = true } = {}) {
  const name = `${prefix}-from`;
  const radio = (value, label, checked) => h('label', { class: 'check' },
    h('input', { type: 'radio', name, value, testid: `${prefix}-from-${value}`, checked }), label);
  const time = h('input', { type: 'datetime-local', step: '1', testid: `${prefix}-time`, value: isoToLocalInput(new Date()) });
  const lsn = h('input', { type: 'text', testid: `${prefix}-lsn`, placeholder: '0/16B3748' });
  const box = h('div', {},
    allowHead ? radio('head', 'Current data (head)', true) : null,
    radio('time', 'A past time', !allowHead), field('Time (your local time)', time),
    radio('lsn', 'An LSN', false), field('LSN', lsn));
  const value = () => {
    const chosen = box.querySelector(`input[name="${name}"]:checked`).value;
    if (chosen === 'time') {
      const iso = localInputToIso(time.value);
      if (!iso) throw new Error('Choose a valid time');
      return { timestamp: iso };
    }
    if (chosen === 'lsn') {
      if (!/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(lsn.value.trim())) throw new Error('An LSN looks like 0/16B3748');
      return { lsn: lsn.value.trim() };
    }
    return {};
  };
  time.addEventListener('focus', () => { box.querySelector(`input[value="time"]`).checked = true; });
  lsn.addEventListener('focus', () => { box.querySelector(`input[value="lsn"]`).checked = true; });
  return { box, value };
}

async function openCreate(state, parentId) {
  const name = h('input', { type: 'text', testid: 'branch-new-name', placeholder: 'dev/feature' });
  const parent = h('select', { testid: 'branch-new-parent' }, branchOptions(state, parentId || state.selected));
  const point = pointPicker('branch-new');
  const schemaOnly = h('input', { type: 'checkbox', testid: 'branch-new-schema-only' });
  const compute = h('input', { type: 'checkbox', testid: 'branch-new-compute', checked: true });
  const isProtected = h('input', { type: 'checkbox', testid: 'branch-new-protected' });
  const expires = h('input', { type: 'datetime-local', step: '1', testid: 'branch-new-expires' });
  const body = h('div', {}, field('Name', name, 'Empty: the branch id is its name.'), field('Parent', parent),
    h('h3', {}, 'Data from'), point.box,
    h('label', { class: 'check' }, schemaOnly, 'Schema only (no rows)'),
    h('label', { class: 'check' }, compute, 'Create a read-write compute'),
    h('label', { class: 'check' }, isProtected, 'Protected'),
    field('Expires (optional)', expires));
  await dialog({
    title: 'New branch', body, submitLabel: 'Create branch', testid: 'branch-create',
    onSubmit: async () => {
      const at = point.value();
      const branch = { parent_id: parent.value };
      if (name.value.trim()) branch.name = name.value.trim();
      if (at.timestamp) branch.parent_timestamp = at.timestamp;
      if (at.lsn) branch.parent_lsn = at.lsn;
      if (schemaOnly.checked) branch.init_source = 'schema-only';
      if (isProtected.checked) branch.protected = true;
      if (expires.value) branch.expires_at = localInputToIso(expires.value);
      const reqBody = { branch };
      if (compute.checked) reqBody.endpoints = [{ type: 'read_write' }];
      const res = await state.ctx.api('POST', `/projects/${state.ctx.projectId}/branches`, reqBody);
      state.selected = res.branch.id;
      await mutate(state, `Branch ${res.branch.name} created`, async () => res);
      history.replaceState(null, '', `#/projects/${state.ctx.projectId}/branches/${res.branch.id}`);
    },
  });
}

async function openEdit(state, b) {
  const name = h('input', { type: 'text', testid: 'branch-rename-name', value: b.name, required: true });
  const isProtected = h('input', { type: 'checkbox', testid: 'branch-edit-protected', checked: b.protected });
  const expires = h('input', { type: 'datetime-local', step: '1', testid: 'branch-edit-expires',
    value: b.expires_at ? isoToLocalInput(b.expires_at) : '' });
  const body = h('div', {}, field('Name', name), h('label', { class: 'check' }, isProtected, 'Protected'),
    field('Expires', expires, 'Leave empty to keep it as it is.'));
  await dialog({
    title: `Edit ${b.name}`, body, submitLabel: 'Save', testid: 'branch-rename',
    onSubmit: async () => {
      const branch = {};
      if (name.value.trim() !== b.name) branch.name = name.value.trim();
      if (isProtected.checked !== b.protected) branch.protected = isProtected.checked;
      const exp = localInputToIso(expires.value);
      if (exp && exp !== b.expires_at) branch.expires_at = exp;
      if (!Object.keys(branch).length) return true;
      await mutate(state, `Branch ${branch.name || b.name} saved`,
        () => state.ctx.api('PATCH', `/projects/${state.ctx.projectId}/branches/${b.id}`, { branch }));
    },
  });
}

async function setDefault(state, b) {
  try {
    await mutate(state, `${b.name} is now the default branch`,
      () => state.ctx.api('POST', `/projects/${state.ctx.projectId}/branches/${b.id}/set_as_default`));
  } catch (err) { state.ctx.toast(err.message, 'error'); }
}

async function openReset(state, b) {
  const parent = state.byId.get(b.parent_id);
  const keep = h('input', { type: 'text', testid: 'branch-reset-preserve', placeholder: `${b.name}_old` });
  const body = h('div', {},
    h('p', {}, `${b.name} gets the current data of its parent ${parent ? parent.name : b.parent_id}. `,
      'Its computes restart on the new data; open sessions end.'),
    field('Keep the current state as a branch named (optional)', keep, 'Required when the branch has children.'));
  await dialog({
    title: `Reset ${b.name} from parent`, body, submitLabel: 'Reset', danger: true, testid: 'branch-reset',
    onSubmit: async () => {
      const req = { source_branch_id: b.parent_id };
      if (keep.value.trim()) req.preserve_under_name = keep.value.trim();
      await mutate(state, `${b.name} was reset from its parent`,
        () => state.ctx.api('POST', `/projects/${state.ctx.projectId}/branches/${b.id}/restore`, req));
    },
  });
}

async function openRestore(state, b) {
  const source = h('select', { testid: 'branch-restore-source' },
    h('option', { value: b.id, selected: true }, `${b.name} (its own history)`),
    state.branches.filter((x) => x.id !== b.id).map((x) => h('option', { value: x.id }, x.name)));
  const point = pointPicker('branch-restore', { allowHead: true });
  point.box.querySelector('input[value="time"]').checked = true;
  const keep = h('input', { type: 'text', testid: 'branch-restore-preserve', placeholder: `${b.name}_old` });
  const body = h('div', {}, field('Restore from', source), h('h3', {}, 'Point in time'), point.box,
    field('Keep the current state as a branch named', keep,
      'Needed when restoring from the branch\u2019s own history or when it has children.'));
  await dialog({
    title: `Restore ${b.name}`, body, submitLabel: 'Restore', danger: true, testid: 'branch-restore',
    onSubmit: async () => {
      const at = point.value();
      const req = { source_branch_id: source.value };
      if (at.timestamp) req.source_timestamp = at.timestamp;
      if (at.lsn) req.source_lsn = at.lsn;
      if (keep.value.trim()) req.preserve_under_name = keep.value.trim();
      await mutate(state, `${b.name} restored${req.preserve_under_name ? `; its old state is ${req.preserve_under_name}` : ''}`,
        () => state.ctx.api('POST', `/projects/${state.ctx.projectId}/branches/${b.id}/restore`, req));
    },
  });
}

async function openDelete(state, b) {
  const body = h('p', {}, `Delete branch ${b.name} with its computes and data? This cannot be undone.`);
  await dialog({
    title: `Delete ${b.name}?`, body, submitLabel: 'Delete', danger: true, testid: 'branch-delete',
    onSubmit: async () => {
      state.selected = b.parent_id;
      await mutate(state, `Branch ${b.name} deleted`,
        () => state.ctx.api('DELETE', `/projects/${state.ctx.projectId}/branches/${b.id}`));
      history.replaceState(null, '', `#/projects/${state.ctx.projectId}/branches${state.selected ? `/${state.selected}` : ''}`);
    },
  });
}
