// Connect: pick branch, database and role, pooled or direct; the connection string the
// API gives (Neon's getConnectionURI) and ready-to-paste snippets; reveal and reset the
// role's password.

import { h, clear, field, dialog, copyText } from '../lib/dom.js';
import { listAll, waitOperations, qs } from '../lib/api.js';

const MASK = '********';

// postgresql://user:pass@host[:port]/db?query -> parts (decoded)
export function parseUri(uri) {
  const m = /^postgres(?:ql)?:\/\/([^:@/]*)(?::([^@]*))?@([^/?]+)\/([^?]*)(?:\?(.*))?$/.exec(uri);
  if (!m) return null;
  const [hostname, port] = m[3].includes(':') ? m[3].split(':') : [m[3], '5432'];
  return { user: decodeURIComponent(m[1]), password: decodeURIComponent(m[2] || ''), host: hostname, port,
    database: decodeURIComponent(m[4]), query: m[5] || '' };
}

function masked(uri, show) {
  if (show) return uri;
  return uri.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)([^@]*)@/, `$1${MASK}@`);
}

// Snippets, in Neon's order; `u` is the chosen (pooled or direct) URI, `direct` the
// direct one (migrations and Prisma's directUrl need it).
const SNIPPETS = [
  ['psql', 'psql', (u) => `psql '${u}'`],
  ['env', '.env', (u, p) => [`DATABASE_URL='${u}'`, '', `PGHOST='${p.host}'`, `PGPORT='${p.port}'`,
    `PGDATABASE='${p.database}'`, `PGUSER='${p.user}'`, `PGPASSWORD='${p.password}'`, "PGSSLMODE='require'"].join('\n')],
  ['prisma', 'Prisma', (u, p, direct) => [
    '# .env', `DATABASE_URL="${u}&connect_timeout=30"`, `DIRECT_URL="${direct}&connect_timeout=30"`, '',
    '// schema.prisma', 'datasource db {', '  provider  = "postgresql"', '  url       = env("DATABASE_URL")',
    '  directUrl = env("DIRECT_URL")', '}'].join('\n')],
  ['drizzle', 'Drizzle', (u) => [
    `// .env: DATABASE_URL='${u}'`, "import { drizzle } from 'drizzle-orm/node-postgres';", '',
    'const db = drizzle(process.env.DATABASE_URL);',
    "const result = await db.execute('select version()');"].join('\n')],
  ['django', 'Django', (u, p) => [
    '# settings.py', 'DATABASES = {', "    'default': {", "        'ENGINE': 'django.db.backends.postgresql',",
    `        'NAME': '${p.database}',`, `        'USER': '${p.user}',`, `        'PASSWORD': '${p.password}',`,
    `        'HOST': '${p.host}',`, `        'PORT': '${p.port}',`, "        'OPTIONS': {'sslmode': 'require'},",
    '    }', '}'].join('\n')],
  ['sqlalchemy', 'SQLAlchemy', (u) => [
    'from sqlalchemy import create_engine, text', '',
    `engine = create_engine("${u.replace(/^postgres(?:ql)?:/, 'postgresql+psycopg:')}")`,
    'with engine.connect() as conn:', '    print(conn.execute(text("select version()")).scalar())'].join('\n')],
  ['node-pg', 'node-postgres', (u) => [
    `// .env: DATABASE_URL='${u}'`, "import pg from 'pg';", '',
    'const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });',
    "const { rows } = await pool.query('select version()');", 'console.log(rows[0]);'].join('\n')],
  ['serverless', 'Serverless driver', (u) => [
    `// .env: DATABASE_URL='${u}'`, "import { neon } from '@neondatabase/serverless';", '',
    'const sql = neon(process.env.DATABASE_URL);', 'const rows = await sql`select version()`;',
    'console.log(rows[0]);'].join('\n')],
];

export async function render(root, ctx) {
  const pid = ctx.projectId;
  const branches = await listAll(ctx.api, `/projects/${pid}/branches`, 'branches', 10000);
  const def = branches.find((b) => b.default) || branches[0];
  const s = { branchId: (ctx.branchId && branches.some((b) => b.id === ctx.branchId)) ? ctx.branchId : def && def.id,
    show: false, tab: 'psql', uris: null, password: null };
  const branchSel = h('select', { testid: 'connect-branch' },
    branches.map((b) => h('option', { value: b.id, selected: b.id === s.branchId }, b.name + (b.default ? ' (default)' : ''))));
  const dbSel = h('select', { testid: 'connect-database' });
  const roleSel = h('select', { testid: 'connect-role' });
  const pooled = h('input', { type: 'checkbox', testid: 'connect-pooled', checked: ctx.params.get('pooled') === 'true' });
  const show = h('input', { type: 'checkbox', testid: 'connect-show-password' });
  const code = h('code', { testid: 'connect-string' }, '');
  const copy = h('button', { class: 'btn', testid: 'connect-copy' }, 'Copy');
  const tabs = h('div', { class: 'tabs', testid: 'snippet-tabs' });
  const snippet = h('pre', { class: 'snippet', testid: 'snippet' });
  const note = h('div', { class: 'muted', testid: 'connect-note' });
  const passwordOut = h('code', { testid: 'role-password' });
  const passwordPanel = h('div', { class: 'panel' }, h('h2', {}, 'Password'),
    h('div', { class: 'row' },
      h('button', { class: 'btn', testid: 'role-reveal', onclick: () => reveal() }, 'Reveal password'),
      h('button', { class: 'btn danger', testid: 'role-reset-open', onclick: () => resetPassword() }, 'Reset password'),
      passwordOut));
  root.append(h('h1', {}, 'Connect to your database'),
    h('div', { class: 'panel' },
      h('div', { class: 'row' }, field('Branch', branchSel), field('Database', dbSel), field('Role', roleSel)),
      h('label', { class: 'check' }, pooled, 'Connection pooling (PgBouncer, transaction mode)'),
      h('div', { class: 'conn-string' }, code, copy),
      h('label', { class: 'check', style: 'margin-top:8px' }, show, 'Show password'), note,
      tabs, snippet),
    passwordPanel);

  for (const [key, label] of SNIPPETS) {
    tabs.append(h('button', { type: 'button', testid: `snippet-tab-${key}`, dataset: { key },
      onclick: () => { s.tab = key; draw(); } }, label));
  }

  async function loadBranch() {
    const base = `/projects/${pid}/branches/${s.branchId}`;
    const [dbs, roles] = await Promise.all([ctx.api('GET', `${base}/databases`), ctx.api('GET', `${base}/roles`)]);
    const keepDb = dbSel.value; const keepRole = roleSel.value;
    clear(dbSel).append(...dbs.databases.map((d) => h('option', { value: d.name, selected: d.name === keepDb }, d.name)));
    const unprotected = roles.roles.filter((r) => !r.protected);
    const login = unprotected.length ? unprotected : roles.roles;
    clear(roleSel).append(...login.map((r) => h('option', { value: r.name, selected: r.name === keepRole }, r.name)));
    const owner = dbs.databases.find((d) => d.name === dbSel.value);
    if (!keepRole && owner && login.some((r) => r.name === owner.owner_name)) roleSel.value = owner.owner_name;
    s.password = null; passwordOut.textContent = '';
    await loadUris();
  }

  async function loadUris() {
    if (!dbSel.value || !roleSel.value) {
      s.uris = null; note.textContent = 'This branch has no database or role to connect with.'; draw(); return;
    }
    const q = (p) => `/projects/${pid}/connection_uri${qs({ branch_id: s.branchId, database_name: dbSel.value, role_name: roleSel.value, pooled: p })}`;
    try {
      const [direct, pool] = await Promise.all([ctx.api('GET', q(false)), ctx.api('GET', q(true))]);
      s.uris = { direct: direct.uri, pooled: pool.uri };
      note.textContent = '';
    } catch (err) {
      s.uris = null;
      note.textContent = err.message;
    }
    draw();
  }

  function draw() {
    const uri = s.uris ? (pooled.checked ? s.uris.pooled : s.uris.direct) : '';
    code.textContent = uri ? masked(uri, show.checked) : '—';
    code.dataset.pooled = String(pooled.checked);
    for (const b of tabs.children) b.classList.toggle('active', b.dataset.key === s.tab);
    if (!uri) { snippet.textContent = ''; return; }
    const shown = masked(uri, show.checked);
    const parts = parseUri(shown) || {};
    const direct = masked(s.uris.direct, show.checked);
    const [, , make] = SNIPPETS.find(([k]) => k === s.tab);
    snippet.textContent = make(shown, parts, direct);
    snippet.dataset.snippet = s.tab;
  }

  async function reveal() {
    try {
      const r = await ctx.api('GET', `/projects/${pid}/branches/${s.branchId}/roles/${encodeURIComponent(roleSel.value)}/reveal_password`);
      passwordOut.textContent = r.password;
    } catch (err) { ctx.toast(err.message, 'error'); }
  }

  async function resetPassword() {
    await dialog({
      title: `Reset the password of ${roleSel.value}?`, testid: 'role-reset', danger: true, submitLabel: 'Reset password',
      body: h('p', {}, 'Connections that use the old password stop working; the new one is shown once here and in the connection string.'),
      onSubmit: async () => {
        const r = await ctx.api('POST', `/projects/${pid}/branches/${s.branchId}/roles/${encodeURIComponent(roleSel.value)}/reset_password`);
        await waitOperations(ctx.api, pid, r.operations);
        passwordOut.textContent = r.role.password || '';
        ctx.toast(`Password of ${r.role.name} reset`);
        await loadUris();
      },
    });
  }

  branchSel.addEventListener('change', async () => {
    s.branchId = branchSel.value;
    history.replaceState(null, '', `#/projects/${pid}/connect/${s.branchId}`);
    try { await loadBranch(); } catch (err) { ctx.toast(err.message, 'error'); }
  });
  dbSel.addEventListener('change', loadUris);
  roleSel.addEventListener('change', () => { passwordOut.textContent = ''; loadUris(); });
  pooled.addEventListener('change', draw);
  show.addEventListener('change', draw);
  copy.addEventListener('click', async () => {
    const uri = s.uris && (pooled.checked ? s.uris.pooled : s.uris.direct);
    if (uri && await copyText(uri)) ctx.toast('Connection string copied');
  });
  if (!s.branchId) { note.textContent = 'This project has no branches.'; return; }
  await loadBranch();
}
