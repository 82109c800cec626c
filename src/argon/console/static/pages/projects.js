// Projects: the list, "New project" (name, Postgres version, region, history window) and
// delete with the project's name typed as confirmation.

import { h, clear, field, dialog, confirmTyped, fmtDate, fmtSeconds } from '../lib/dom.js';
import { waitOperations } from '../lib/api.js';

const HISTORY_CHOICES = [[0, 'none'], [3600, '1 hour'], [21600, '6 hours'], [86400, '1 day'],
  [604800, '7 days'], [1209600, '14 days'], [2592000, '30 days']];

export async function render(root, ctx) {
  const list = h('div', { testid: 'projects-list' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Projects'), h('span', { class: 'spacer' }),
      h('button', { class: 'btn primary', testid: 'project-create-open', onclick: () => openCreate(ctx, list) }, 'New project')),
    list);
  await fill(ctx, list);
}

async function fill(ctx, list) {
  const { projects } = await ctx.api('GET', '/projects?limit=400');
  if (!projects.length) {
    clear(list).append(h('div', { class: 'empty panel' }, 'No projects yet. Create one to get a Postgres database.'));
    return;
  }
  const rows = projects.map((p) => h('tr', { testid: `project-row-${p.id}`, dataset: { name: p.name } },
    h('td', {}, h('a', { href: `#/projects/${p.id}/branches`, testid: `project-link-${p.id}` }, p.name)),
    h('td', { class: 'mono muted' }, p.id),
    h('td', {}, `Postgres ${p.pg_version}`),
    h('td', {}, p.region_id),
    h('td', {}, fmtSeconds(p.history_retention_seconds)),
    h('td', {}, fmtDate(p.created_at)),
    h('td', { class: 'num' },
      h('a', { class: 'btn small', href: `#/projects/${p.id}/settings` }, 'Settings'), ' ',
      h('button', { class: 'btn small', testid: `project-delete-${p.id}`, onclick: () => openDelete(ctx, list, p) }, 'Delete'))));
  clear(list).append(h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, ...['Name', 'Id', 'Version', 'Region', 'History', 'Created', ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows)));
}

async function versionsAndRegions(ctx) {
  const [status, regions] = await Promise.all([
    ctx.api('GET', '/argon/status').catch(() => ({ postgres: [] })),
    ctx.api('GET', '/regions').catch(() => ({ regions: [{ region_id: 'local', name: 'local', default: true }] })),
  ]);
  const versions = [...new Set((status.postgres || []).map((p) => parseInt(String(p.version), 10))
    .filter((v) => v >= 14))].sort((a, b) => b - a);
  return { versions, regions: regions.regions || [] };
}

async function openCreate(ctx, list) {
  const { versions, regions } = await versionsAndRegions(ctx);
  const name = h('input', { type: 'text', testid: 'project-name', placeholder: 'my-project', required: true });
  const version = h('select', { testid: 'project-pg-version' },
    versions.map((v, i) => h('option', { value: v, selected: i === 0 }, `Postgres ${v}`)));
  const region = h('select', { testid: 'project-region' },
    regions.map((r) => h('option', { value: r.region_id, selected: r.default }, r.region_id === r.name ? r.name : `${r.name} (${r.region_id})`)));
  const history = h('select', { testid: 'project-history' },
    HISTORY_CHOICES.map(([s, label]) => h('option', { value: s, selected: s === 86400 }, label)));
  const body = h('div', {}, field('Name', name), field('Postgres version', version),
    field('Region', region), field('History window', history, 'How far back branches can be created from a time and restored.'));
  await dialog({
    title: 'New project', body, submitLabel: 'Create project', testid: 'project-create',
    onSubmit: async () => {
      const project = { name: name.value.trim(), region_id: region.value,
        history_retention_seconds: Number(history.value) };
      if (version.value) project.pg_version = Number(version.value);
      const created = await ctx.api('POST', '/projects', { project });
      await waitOperations(ctx.api, created.project.id, created.operations);
      ctx.toast(`Project ${created.project.name} created`);
      await fill(ctx, list);
      if (ctx.refreshProjects) await ctx.refreshProjects();
    },
  });
}

async function openDelete(ctx, list, p) {
  await confirmTyped({
    title: `Delete project ${p.name}?`, name: p.name, testid: 'project-delete',
    message: 'Every branch, compute and its data is deleted; this cannot be undone.',
    onConfirm: async () => {
      await ctx.api('DELETE', `/projects/${p.id}`);
      ctx.toast(`Project ${p.name} deleted`);
      await fill(ctx, list);
      if (ctx.refreshProjects) await ctx.refreshProjects();
    },
  });
}
