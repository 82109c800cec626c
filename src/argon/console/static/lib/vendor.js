// The vendored libraries (static/vendor/, see its README): classic scripts and their
// stylesheets, loaded once, when a page first needs them (CodeMirror is 400 KB; the
// projects list should not wait for it).  Same origin only: the console runs offline
// and its Content-Security-Policy allows scripts from 'self' alone.

const loaded = new Map();

function once(key, make) {
  if (!loaded.has(key)) loaded.set(key, make());
  return loaded.get(key);
}

function script(path) {
  return once(path, () => new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = new URL(`../vendor/${path}`, import.meta.url).href;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${path}`));
    document.head.append(s);
  }));
}

function style(path) {
  return once(path, () => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = new URL(`../vendor/${path}`, import.meta.url).href;
    document.head.append(link);
    return Promise.resolve();
  });
}

export const CODEMIRROR = 'codemirror-5.65.21';
export const UPLOT = 'uplot-1.6.32';

// window.CodeMirror with the SQL mode, bracket matching and keyword hints.
export async function codeMirror() {
  style(`${CODEMIRROR}/lib/codemirror.css`);
  style(`${CODEMIRROR}/addon/hint/show-hint.css`);
  await script(`${CODEMIRROR}/lib/codemirror.js`);   // the addons need it first
  await Promise.all([`mode/sql/sql.js`, 'addon/edit/matchbrackets.js', 'addon/hint/show-hint.js']
    .map((p) => script(`${CODEMIRROR}/${p}`)));
  await script(`${CODEMIRROR}/addon/hint/sql-hint.js`);   // after show-hint and the mode
  return window.CodeMirror;
}

// window.uPlot.
export async function uPlot() {
  style(`${UPLOT}/uPlot.min.css`);
  await script(`${UPLOT}/uPlot.iife.min.js`);
  return window.uPlot;
}
