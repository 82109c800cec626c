// A results grid: column names with their Postgres types, NULLs told apart from text,
// optional sortable headers and editable cells.  Built as DOM nodes (values are text,
// never HTML).

import { h } from './dom.js';

// The data pages' own stylesheet (pages/data.css), linked once.
export function useStyles() {
  if (document.getElementById('data-css')) return;
  const link = document.createElement('link');
  link.id = 'data-css';
  link.rel = 'stylesheet';
  link.href = new URL('../pages/data.css', import.meta.url).href;
  document.head.append(link);
}

// How a value reads in a cell: NULL, JSON for objects/arrays, the text otherwise.
export function cellText(v) {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// columns: [{name, type}], rows: [[...]]
// opts: {testid, sort, order, onSort(name), onEdit(rowIndex, colIndex, td), editable(colIndex)}
export function resultGrid(columns, rows, opts = {}) {
  const head = h('tr', {}, ...columns.map((c, i) => {
    const sorted = opts.sort === c.name;
    const arrow = sorted ? (opts.order === 'desc' ? ' ▼' : ' ▲') : '';
    const th = h('th', { testid: `grid-col-${i}`, dataset: { column: c.name, type: c.type || '' },
      class: opts.onSort ? 'sortable' : '' },
    h('span', { class: 'col-name' }, c.name, arrow),
    h('span', { class: 'col-type', testid: `grid-type-${i}` }, c.type || ''));
    if (opts.onSort) {
      th.dataset.testid = `sort-${c.name}`;
      th.addEventListener('click', () => opts.onSort(c.name));
    }
    return th;
  }));
  const body = h('tbody', {}, ...rows.map((row, r) => h('tr', { testid: `grid-row-${r}` },
    ...row.map((v, c) => {
      const td = h('td', { class: v === null ? 'null' : (typeof v === 'number' ? 'num' : ''),
        testid: `cell-${r}-${c}`, title: cellText(v) }, cellText(v));
      if (opts.onEdit && (!opts.editable || opts.editable(c))) {
        td.classList.add('editable');
        td.addEventListener('dblclick', () => opts.onEdit(r, c, td));
      }
      return td;
    }))));
  return h('div', { class: 'grid-wrap' },
    h('table', { class: 'list grid', testid: opts.testid || 'result-grid' }, h('thead', {}, head), body));
}

// Turns a cell into an input; resolves with the new text (null for NULL via the
// checkbox) or undefined when the edit is abandoned (Escape).
export function editCell(td, current) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', testid: 'cell-input', value: current === null ? '' : cellText(current) });
    const isNull = h('input', { type: 'checkbox', testid: 'cell-null', checked: current === null });
    const save = h('button', { class: 'btn small primary', testid: 'cell-save', type: 'button' }, 'Save');
    const old = [...td.childNodes];
    td.textContent = '';
    td.append(h('span', { class: 'cell-editor' }, input, h('label', { class: 'muted' }, isNull, ' NULL'), save));
    input.focus();
    input.select();
    const done = (value) => { td.textContent = ''; td.append(...old); resolve(value); };
    save.addEventListener('click', () => done(isNull.checked ? null : input.value));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); done(isNull.checked ? null : input.value); }
      if (e.key === 'Escape') done(undefined);
    });
  });
}
