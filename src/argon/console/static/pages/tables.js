// Tables: schemas and their tables, a page of rows (sorted by any column), column types
// and indexes, and editing a cell by primary key with the UPDATE it ran shown.

import { h, clear } from '../lib/dom.js';
import { qs } from '../lib/api.js';
import { resultGrid, editCell, useStyles } from '../lib/grid.js';
import { loadBranches, branchDbRole } from '../lib/pickers.js';

const PAGE = 50;

export async function render(root, ctx) {
  useStyles();
  const branches = await loadBranches(ctx);
  if (!branches.length) { root.append(h('div', { class: 'empty' }, 'This project has no branches.')); return; }
  const tree = h('div', { class: 'tables-tree', testid: 'tables-tree' });
  const detail = h('div', { class: 'tables-detail', testid: 'tables-detail' },
    h('div', { class: 'empty' }, 'Pick a table.'));
  let current = null;   // {schema, table, info, offset, sort, order}

  const base = () => `/console/projects/${ctx.projectId}/branches/${pickers.value().branchId}/tables`;
  const who = () => ({ database: pickers.value().database, role: pickers.value().role });

  async function loadTree() {
    clear(tree).append(h('div', { class: 'loading' }, 'Loading…'));
    clear(detail).append(h('div', { class: 'empty' }, 'Pick a table.'));
    current = null;
    try {
      const data = await ctx.api('GET', `${base()}${qs(who())}`);
      clear(tree);
      for (const schema of data.schemas) {
        tree.append(h('div', { class: 'schema', testid: `schema-${schema.name}` },
          h('div', { class: 'schema-name' }, schema.name),
          ...(schema.tables.length ? schema.tables.map((t) => h('a', {
            href: 'javascript:void(0)', class: 'table-item', testid: `table-item-${schema.name}.${t.name}`,
            onclick: () => openTable(schema.name, t.name),
          }, t.name, t.kind !== 'table' ? h('span', { class: 'badge' }, t.kind) : null)) : [h('div', { class: 'muted' }, 'no tables')])));
      }
    } catch (err) { clear(tree).append(h('div', { class: 'error-box' }, err.message)); }
  }

  async function openTable(schema, table) {
    for (const a of tree.querySelectorAll('.table-item')) a.classList.toggle('active', a.dataset.testid === `table-item-${schema}.${table}`);
    clear(detail).append(h('div', { class: 'loading' }, 'Loading…'));
    try {
      const info = await ctx.api('GET', `${base()}/${encodeURIComponent(schema)}/${encodeURIComponent(table)}${qs(who())}`);
      current = { schema, table, info, offset: 0, sort: null, order: 'asc' };
      await showRows();
    } catch (err) { clear(detail).append(h('div', { class: 'error-box' }, err.message)); }
  }

  function structure(info) {
    return h('div', {},
      h('h3', {}, 'Columns'),
      h('table', { class: 'list', testid: 'columns-table' },
        h('thead', {}, h('tr', {}, ...['Column', 'Type', 'Nullable', 'Default', ''].map((x) => h('th', {}, x)))),
        h('tbody', {}, ...info.columns.map((c) => h('tr', { testid: `column-${c.name}` },
          h('td', {}, c.name), h('td', { class: 'mono', testid: `column-type-${c.name}` }, c.type),
          h('td', {}, c.nullable ? 'yes' : 'no'), h('td', { class: 'mono' }, c.default || ''),
          h('td', {}, c.primary_key ? h('span', { class: 'badge green' }, 'primary key') : ''))))),
      h('h3', {}, 'Indexes'),
      info.indexes.length ? h('table', { class: 'list', testid: 'indexes-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Definition'))),
        h('tbody', {}, ...info.indexes.map((i) => h('tr', { testid: `index-${i.name}` },
          h('td', {}, i.name, i.primary ? h('span', { class: 'badge green' }, 'primary') : (i.unique ? h('span', { class: 'badge' }, 'unique') : null)),
          h('td', { class: 'mono' }, i.definition)))))
        : h('div', { class: 'muted', testid: 'indexes-table' }, 'No indexes.'));
  }

  async function showRows() {
    const c = current;
    const params = { ...who(), limit: PAGE, offset: c.offset, sort: c.sort, order: c.order };
    const page = await ctx.api('GET', `${base()}/${encodeURIComponent(c.schema)}/${encodeURIComponent(c.table)}/rows${qs(params)}`);
    if (current !== c) return;
    const pk = c.info.primary_key;
    const sqlShown = h('div', { class: 'cell-sql', testid: 'cell-sql', hidden: true });
    const grid = resultGrid(page.columns, page.rows, {
      testid: 'rows-grid', sort: c.sort, order: c.order,
      onSort: (name) => {
        if (c.sort === name) c.order = c.order === 'asc' ? 'desc' : 'asc';
        else { c.sort = name; c.order = 'asc'; }
        c.offset = 0;
        showRows().catch((err) => ctx.toast(err.message, 'error'));
      },
      editable: () => pk.length > 0,
      onEdit: async (r, col, td) => {
        const value = await editCell(td, page.rows[r][col]);
        if (value === undefined) return;
        const key = {};
        for (const k of pk) key[k] = page.rows[r][page.columns.findIndex((x) => x.name === k)];
        try {
          const res = await ctx.api('PATCH', `${base()}/${encodeURIComponent(c.schema)}/${encodeURIComponent(c.table)}/rows`,
            { ...who(), key, column: page.columns[col].name, value });
          page.rows[r][col] = res.row[page.columns[col].name];
          td.textContent = res.row[page.columns[col].name] === null ? 'NULL' : String(res.row[page.columns[col].name]);
          sqlShown.hidden = false;
          clear(sqlShown).append(h('span', { class: 'muted' }, 'Ran: '), h('code', { testid: 'cell-sql-text' }, res.sql));
          ctx.toast('Saved.');
        } catch (err) { ctx.toast(err.message, 'error'); }
      },
    });
    const end = Math.min(c.offset + page.rows.length, page.total);
    const prev = h('button', { class: 'btn small', testid: 'rows-prev', disabled: c.offset === 0,
      onclick: () => { c.offset = Math.max(0, c.offset - PAGE); showRows().catch((err) => ctx.toast(err.message, 'error')); } }, '‹ Previous');
    const next = h('button', { class: 'btn small', testid: 'rows-next', disabled: end >= page.total,
      onclick: () => { c.offset += PAGE; showRows().catch((err) => ctx.toast(err.message, 'error')); } }, 'Next ›');
    clear(detail).append(
      h('h2', { testid: 'table-title' }, `${c.schema}.${c.table}`),
      pk.length ? h('div', { class: 'muted' }, 'Double-click a cell to edit it (by primary key: ', pk.join(', '), ').')
        : h('div', { class: 'warn', testid: 'no-pk' }, 'This table has no primary key: its rows cannot be edited here.'),
      h('div', { class: 'toolbar' }, prev, h('span', { testid: 'rows-range' }, page.total ? `${c.offset + 1}–${end} of ${page.total}` : 'no rows'), next),
      sqlShown, grid, structure(c.info));
  }

  const pickers = branchDbRole(ctx, branches, { initialBranch: ctx.branchId, testid: 'tables', onChange: loadTree });
  root.append(h('h1', {}, 'Tables'), h('div', { class: 'toolbar' }, pickers.el),
    h('div', { class: 'tables-layout' }, h('aside', { class: 'panel' }, tree), h('div', { class: 'panel' }, detail)));
  await pickers.ready;
  await loadTree();
}
