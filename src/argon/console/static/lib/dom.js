// Small DOM helpers: element building, escaping, formatting and modal dialogs.

// h('button', {class: 'x', onclick: fn, dataset: {testid: 'y'}}, 'text', child...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'testid') el.dataset.testid = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'required') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
// For pages that build large tables as one HTML string (one parse instead of many nodes).
export function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]); }

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n); let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// One formatter for every date: building one per call (toLocaleString with options)
// costs about a millisecond, which a 1,000-row table pays several times over.
const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short',
  day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const SHORT_FORMAT = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

export function fmtDate(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return DATE_FORMAT.format(d);
}

// Without the year, for narrow table columns (the full date is in the row's title).
export function fmtDateShort(s) {
  if (!s) return '';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : SHORT_FORMAT.format(d);
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function fmtSeconds(s) {
  if (s === null || s === undefined) return '—';
  if (s % 86400 === 0 && s >= 86400) return `${s / 86400} d`;
  if (s % 3600 === 0 && s >= 3600) return `${s / 3600} h`;
  if (s % 60 === 0 && s >= 60) return `${s / 60} min`;
  return `${s} s`;
}

// A value of <input type="datetime-local"> (local time) as an ISO timestamp in UTC.
export function localInputToIso(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

// A Date as the value an <input type="datetime-local" step="1"> shows (local time).
export function isoToLocalInput(d) {
  const date = d instanceof Date ? d : new Date(d);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// A labelled form field.
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

// A modal dialog.  `body` is a node; `onSubmit` gets the form and may throw (the error is
// shown in the dialog and it stays open) or return false to stay open.  Resolves true
// when submitted, false when cancelled.
export function dialog({ title, body, submitLabel = 'OK', danger = false, testid = 'dialog',
  onSubmit = async () => true, submitDisabled = false }) {
  return new Promise((resolve) => {
    const error = h('div', { class: 'dialog-error', testid: `${testid}-error`, hidden: true });
    const submit = h('button', { type: 'submit', class: danger ? 'btn danger' : 'btn primary',
      testid: `${testid}-submit`, disabled: submitDisabled }, submitLabel);
    const cancel = h('button', { type: 'button', class: 'btn', testid: `${testid}-cancel` }, 'Cancel');
    const form = h('form', { class: 'dialog', testid },
      h('h2', {}, title), body, error, h('div', { class: 'dialog-actions' }, cancel, submit));
    const overlay = h('div', { class: 'overlay' }, form);
    const close = (result) => { overlay.remove(); document.removeEventListener('keydown', onKey); resolve(result); };
    const onKey = (e) => { if (e.key === 'Escape') close(false); };
    cancel.addEventListener('click', () => close(false));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      const label = submit.textContent;
      submit.textContent = 'Working…';
      try {
        const ok = await onSubmit(form);
        if (ok === false) { submit.disabled = false; submit.textContent = label; return; }
        close(true);
      } catch (err) {
        error.textContent = err.message || String(err);
        error.hidden = false;
        submit.disabled = false;
        submit.textContent = label;
      }
    });
    document.addEventListener('keydown', onKey);
    document.body.append(overlay);
    const first = form.querySelector('input, select, textarea');
    if (first) first.focus();
    form.submitButton = submit;
  });
}

// Opens a dialog and returns its submit button (for dialogs that enable it later).
export function lastDialogSubmit(testid = 'dialog') {
  return document.querySelector(`[data-testid="${testid}-submit"]`);
}

// A dialog that only submits once the user typed `name` (deleting projects).
export function confirmTyped({ title, message, name, submitLabel = 'Delete', onConfirm, testid = 'confirm' }) {
  const input = h('input', { type: 'text', testid: `${testid}-input`, autocomplete: 'off', placeholder: name });
  const body = h('div', {}, h('p', {}, message),
    field(`Type ${name} to confirm`, input));
  const p = dialog({ title, body, submitLabel, danger: true, testid, submitDisabled: true,
    onSubmit: async () => { if (input.value !== name) return false; await onConfirm(); return true; } });
  const submit = lastDialogSubmit(testid);
  input.addEventListener('input', () => { submit.disabled = input.value !== name; });
  return p;
}

export async function copyText(text) {
  try { await navigator.clipboard.writeText(text); return true; } catch { return false; }
}
