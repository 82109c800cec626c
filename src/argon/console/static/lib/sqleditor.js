// The SQL editor component: CodeMirror 5 (vendored) in PostgreSQL mode, with line
// numbers, bracket matching, keyword completion (Ctrl+Space) and Ctrl+Enter to run.
// The wrapper element carries data-testid="sql-editor"; its .CodeMirror property is
// the editor instance (CodeMirror's own convention), which the tests use too.

import { codeMirror } from './vendor.js';

// opts: {value, testid, onRun(), placeholder}; returns {el, value, focus(), select(from, to), refresh()}
export async function sqlEditor(opts = {}) {
  const CodeMirror = await codeMirror();
  const cm = CodeMirror(() => {}, {   // placed by the caller, through .el
    value: opts.value || '',
    mode: 'text/x-pgsql',
    lineNumbers: true,
    matchBrackets: true,
    indentUnit: 2,
    tabSize: 2,
    viewportMargin: Infinity,
    extraKeys: {
      'Ctrl-Enter': () => opts.onRun && opts.onRun(),
      'Cmd-Enter': () => opts.onRun && opts.onRun(),
      'Ctrl-Space': 'autocomplete',
    },
  });
  const el = cm.getWrapperElement();
  el.classList.add('sql-editor');
  el.dataset.testid = opts.testid || 'sql-editor';
  if (opts.placeholder) cm.getInputField().setAttribute('aria-label', opts.placeholder);
  // CodeMirror measures itself; it was built detached, so measure again once shown.
  new IntersectionObserver((entries, obs) => {
    if (entries.some((e) => e.isIntersecting)) { cm.refresh(); obs.disconnect(); }
  }).observe(el);
  return {
    el,
    cm,
    get value() { return cm.getValue(); },
    set value(v) { cm.setValue(v); },
    focus() { cm.focus(); },
    // select characters [from, to) of the text (0-based offsets)
    select(from, to) { cm.focus(); cm.setSelection(cm.posFromIndex(from), cm.posFromIndex(to)); },
    refresh() { cm.refresh(); },
  };
}
