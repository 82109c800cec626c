// The console shell: sign-in, layout (project switcher, navigation), hash router, toasts.
// Pages are ES modules under pages/, imported on first use; each exports
// `render(root, ctx)` (see the console contract).

import { makeApi, savedKey, saveKey, forgetKey } from './lib/api.js';
import { h, clear } from './lib/dom.js';

// Project pages in navigation order, with their labels.
const PROJECT_PAGES = [
  ['branches', 'Branches'], ['connect', 'Connect'], ['sql', 'SQL Editor'], ['tables', 'Tables'],
  ['diff', 'Schema diff'], ['monitoring', 'Monitoring'], ['operations', 'Operations'],
  ['settings', 'Settings'],
];
const PAGE_NAMES = new Set(PROJECT_PAGES.map(([p]) => p));

const appEl = document.getElementById('app');
const toastsEl = document.getElementById('toasts');
let shell = null;          // {main, switcher, nav} once signed in
let renderSeq = 0;         // a navigation that started later wins over an earlier one

export function toast(message, kind = 'info') {
  const el = h('div', { class: `toast ${kind}`, testid: kind === 'error' ? 'toast-error' : 'toast', role: 'status' }, message);
  toastsEl.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

const api = makeApi(savedKey, () => signOut('Your API key was not accepted; sign in again.'));

// #/projects | #/projects/<project_id>/<page>[/<branch_id>][?query]
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, '') || '/projects';
  const qi = raw.indexOf('?');
  const path = qi >= 0 ? raw.slice(0, qi) : raw;
  const params = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'projects' || parts.length < 2) return { page: 'projects', projectId: null, branchId: null, params };
  return { page: parts[2] || 'branches', projectId: parts[1], branchId: parts[3] || null, params };
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signOut(message) {
  forgetKey();
  shell = null;
  renderSignIn(message);
}

function renderSignIn(message) {
  const key = h('input', { type: 'password', testid: 'signin-key', autocomplete: 'off',
    placeholder: 'API key', required: true });
  const error = h('div', { class: 'error', testid: 'signin-error', hidden: !message }, message || '');
  const submit = h('button', { type: 'submit', class: 'btn primary', testid: 'signin-submit' }, 'Sign in');
  const form = h('form', { class: 'signin', testid: 'signin-form' },
    h('h1', {}, 'Argon console'),
    h('p', {}, 'Sign in with an API key: the bootstrap key is in <home>/secrets/bootstrap_api_key; ',
      'more keys come from ', h('code', {}, 'argon api-keys create'), '.'),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'API key'), key),
    error, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    const candidate = key.value.trim();
    try {
      await makeApi(() => candidate)('GET', '/projects?limit=1');
      saveKey(candidate);
      route();
    } catch (err) {
      error.textContent = err.status === 401 ? 'That API key was not accepted.' : err.message;
      error.hidden = false;
      submit.disabled = false;
    }
  });
  clear(appEl).append(form);
  key.focus();
}

function buildShell() {
  const switcher = h('select', { testid: 'project-switcher', 'aria-label': 'Project' });
  switcher.addEventListener('change', () => {
    const r = parseHash();
    if (!switcher.value) navigate('#/projects');
    else navigate(`#/projects/${switcher.value}/${r.projectId && r.page !== 'projects' ? r.page : 'branches'}`);
  });
  const nav = h('nav', { class: 'sidebar', testid: 'nav' });
  const main = h('main', { class: 'main', testid: 'main' });
  const out = h('button', { class: 'btn small', testid: 'signout', onclick: () => signOut('') }, 'Sign out');
  clear(appEl).append(h('div', { class: 'shell' },
    h('header', { class: 'topbar' }, h('a', { class: 'brand', href: '#/projects' }, 'Argon'), switcher,
      h('span', { class: 'spacer' }), out),
    nav, main));
  shell = { main, switcher, nav, projects: [] };
  return shell;
}

async function refreshProjects() {
  if (!shell) return [];
  const data = await api('GET', '/projects?limit=400');
  shell.projects = data.projects || [];
  fillSwitcher(parseHash().projectId);
  return shell.projects;
}

function fillSwitcher(selected) {
  const { switcher } = shell;
  clear(switcher).append(h('option', { value: '' }, 'All projects'),
    ...shell.projects.map((p) => h('option', { value: p.id, selected: p.id === selected }, `${p.name} (${p.id})`)));
  switcher.value = selected && shell.projects.some((p) => p.id === selected) ? selected : '';
}

function fillNav(r) {
  const items = [h('a', { href: '#/projects', testid: 'nav-projects', class: r.page === 'projects' ? 'active' : '' }, 'Projects')];
  if (r.projectId) {
    const project = shell.projects.find((p) => p.id === r.projectId);
    items.push(h('div', { class: 'section' }, project ? project.name : r.projectId));
    for (const [page, label] of PROJECT_PAGES) {
      items.push(h('a', { href: `#/projects/${r.projectId}/${page}`, testid: `nav-${page}`,
        class: r.page === page ? 'active' : '' }, label));
    }
  }
  clear(shell.nav).append(...items);
}

async function route() {
  if (!savedKey()) {
    // Already showing (maybe with why the key was refused): leave the message there.
    if (!appEl.querySelector('[data-testid="signin-form"]')) renderSignIn('');
    return;
  }
  const first = !shell;
  if (first) buildShell();
  const r = parseHash();
  const seq = ++renderSeq;
  if (first || (r.projectId && !shell.projects.some((p) => p.id === r.projectId))) {
    try { await refreshProjects(); } catch (err) { if (err.status === 401) return; toast(err.message, 'error'); }
    if (seq !== renderSeq || !shell) return;
  }
  fillSwitcher(r.projectId);
  fillNav(r);
  const root = h('div', { class: 'page', testid: `page-${r.page}` });
  clear(shell.main).append(root);
  if (r.page !== 'projects' && !PAGE_NAMES.has(r.page)) {
    root.append(h('div', { class: 'empty' }, `No page called ${r.page}.`));
    return;
  }
  root.append(h('div', { class: 'loading' }, 'Loading…'));
  const ctx = {
    api, projectId: r.projectId, branchId: r.branchId, params: r.params, navigate, toast,
    refreshProjects, isCurrent: () => seq === renderSeq,
  };
  try {
    const mod = await import(`./pages/${r.page}.js`);
    if (seq !== renderSeq) return;
    clear(root);
    await mod.render(root, ctx);
  } catch (err) {
    if (seq !== renderSeq || !shell) return;
    if (err.status === 401) return;
    clear(root).append(h('div', { class: 'error-box', testid: 'page-error' }, err.message || String(err)));
  }
}

window.addEventListener('hashchange', route);
route();
