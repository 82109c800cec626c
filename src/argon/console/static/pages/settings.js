// Project settings (name, history window, scale-to-zero delay, compute size, logical
// replication) and the project's computes with start / suspend / restart.

import { h, clear, field, dialog, fmtDate, fmtSeconds } from '../lib/dom.js';
import { waitOperations } from '../lib/api.js';

const CU_CHOICES = [0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56];
const SUSPEND_CHOICES = [[-1, 'never'], [60, '1 minute'], [300, '5 minutes'], [900, '15 minutes'],
  [1800, '30 minutes'], [3600, '1 hour'], [86400, '1 day'], [604800, '7 days']];

function cuSelect(testid, value) {
  const choices = CU_CHOICES.includes(value) ? CU_CHOICES : [...CU_CHOICES, value].sort((a, b) => a - b);
  return h('select', { testid }, choices.map((c) => h('option', { value: c, selected: c === value }, `${c} CU`)));
}

function suspendSelect(testid, value) {
  const known = SUSPEND_CHOICES.some(([s]) => s === value);
  // 0 means "Neon's default" (Argon's configured default delay).
  const choices = known ? SUSPEND_CHOICES : [...SUSPEND_CHOICES, [value, value === 0 ? 'default' : fmtSeconds(value)]];
  return h('select', { testid }, choices.map(([s, label]) => h('option', { value: s, selected: s === value }, label)));
}

export async function render(root, ctx) {
  const pid = ctx.projectId;
  const { project } = await ctx.api('GET', `/projects/${pid}`);
  const des = project.default_endpoint_settings || { autoscaling_limit_min_cu: 0.25, autoscaling_limit_max_cu: 0.25, suspend_timeout_seconds: 0 };
  const logical = Boolean(project.settings && project.settings.enable_logical_replication);

  const name = h('input', { type: 'text', testid: 'settings-name', value: project.name, required: true });
  const hours = h('input', { type: 'number', testid: 'settings-history-hours', min: '0', max: '720', step: 'any',
    value: String(project.history_retention_seconds / 3600) });
  const suspend = suspendSelect('settings-suspend', des.suspend_timeout_seconds);
  const minCu = cuSelect('settings-min-cu', des.autoscaling_limit_min_cu);
  const maxCu = cuSelect('settings-max-cu', des.autoscaling_limit_max_cu);
  const logicalBox = h('input', { type: 'checkbox', testid: 'settings-logical-replication', checked: logical, disabled: logical });
  const save = h('button', { class: 'btn primary', testid: 'settings-save', type: 'submit' }, 'Save');
  const form = h('form', { class: 'panel narrow', testid: 'settings-form' },
    h('h2', {}, 'General'), field('Project name', name),
    field('History window (hours)', hours, 'How far back you can branch from a time or restore; 0 to 720 hours (30 days).'),
    h('h2', {}, 'Compute defaults'),
    field('Scale to zero after', suspend, 'Idle time before a compute is suspended.'),
    h('div', { class: 'row' }, field('Minimum size', minCu), field('Maximum size', maxCu)),
    h('p', { class: 'field-hint' }, 'Applies to computes created from now on; change an existing compute below.'),
    h('h2', {}, 'Logical replication'),
    h('label', { class: 'check' }, logicalBox, 'Enable logical replication'),
    h('div', { class: 'warn', testid: 'logical-replication-warning' },
      'Enabling logical replication sets wal_level to logical on every compute of this project, ',
      'restarting active computes (their connections drop). It cannot be turned off again.'),
    save);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const update = {};
    if (name.value.trim() !== project.name) update.name = name.value.trim();
    const secs = Math.round(Number(hours.value) * 3600);
    if (secs !== project.history_retention_seconds) update.history_retention_seconds = secs;
    const endpointSettings = {};
    if (Number(suspend.value) !== des.suspend_timeout_seconds) endpointSettings.suspend_timeout_seconds = Number(suspend.value);
    if (Number(minCu.value) !== des.autoscaling_limit_min_cu) endpointSettings.autoscaling_limit_min_cu = Number(minCu.value);
    if (Number(maxCu.value) !== des.autoscaling_limit_max_cu) endpointSettings.autoscaling_limit_max_cu = Number(maxCu.value);
    if (Number(minCu.value) > Number(maxCu.value)) { ctx.toast('The minimum size must not exceed the maximum', 'error'); return; }
    if (Object.keys(endpointSettings).length) update.default_endpoint_settings = endpointSettings;
    if (logicalBox.checked && !logical) {
      const ok = await dialog({ title: 'Enable logical replication?', testid: 'logical-confirm', submitLabel: 'Enable',
        body: h('p', {}, 'Active computes restart, and logical replication cannot be disabled afterwards.') });
      if (!ok) return;
      update.settings = { enable_logical_replication: true };
    }
    if (!Object.keys(update).length) { ctx.toast('Nothing changed'); return; }
    save.disabled = true;
    try {
      const res = await ctx.api('PATCH', `/projects/${pid}`, { project: update });
      await waitOperations(ctx.api, pid, res.operations);
      ctx.toast('Settings saved');
      if (ctx.refreshProjects) await ctx.refreshProjects();
      if (ctx.isCurrent()) { clear(root); await render(root, ctx); }
    } catch (err) {
      ctx.toast(err.message, 'error');
      save.disabled = false;
    }
  });

  const computes = h('div', { testid: 'endpoints' });
  root.append(h('h1', {}, 'Settings'), form, h('div', { class: 'panel' }, h('h2', {}, 'Computes'), computes));
  await drawEndpoints(ctx, computes);
}

async function drawEndpoints(ctx, box) {
  const pid = ctx.projectId;
  const [{ endpoints }, { branches }] = await Promise.all([
    ctx.api('GET', `/projects/${pid}/endpoints`), ctx.api('GET', `/projects/${pid}/branches?limit=10000`)]);
  const names = new Map(branches.map((b) => [b.id, b.name]));
  if (!endpoints.length) { clear(box).append(h('div', { class: 'empty' }, 'No computes.')); return; }
  const act = async (ep, action) => {
    try {
      const res = await ctx.api('POST', `/projects/${pid}/endpoints/${ep.id}/${action}`);
      await waitOperations(ctx.api, pid, res.operations);
      ctx.toast(`${ep.id}: ${action} done`);
    } catch (err) { ctx.toast(err.message, 'error'); }
    await drawEndpoints(ctx, box);
  };
  const rows = endpoints.map((ep) => {
    const minCu = cuSelect(`endpoint-min-cu-${ep.id}`, ep.autoscaling_limit_min_cu);
    const maxCu = cuSelect(`endpoint-max-cu-${ep.id}`, ep.autoscaling_limit_max_cu);
    const suspend = suspendSelect(`endpoint-suspend-${ep.id}`, ep.suspend_timeout_seconds);
    const saveEp = async () => {
      try {
        const res = await ctx.api('PATCH', `/projects/${pid}/endpoints/${ep.id}`, { endpoint: {
          autoscaling_limit_min_cu: Number(minCu.value), autoscaling_limit_max_cu: Number(maxCu.value),
          suspend_timeout_seconds: Number(suspend.value) } });
        await waitOperations(ctx.api, pid, res.operations);
        ctx.toast(`${ep.id} saved`);
      } catch (err) { ctx.toast(err.message, 'error'); }
      await drawEndpoints(ctx, box);
    };
    return h('tr', { testid: `endpoint-row-${ep.id}` },
      h('td', { class: 'mono' }, ep.id),
      h('td', {}, names.get(ep.branch_id) || ep.branch_id),
      h('td', {}, ep.type),
      h('td', { testid: `endpoint-state-${ep.id}` }, ep.current_state),
      h('td', {}, minCu, ' – ', maxCu),
      h('td', {}, suspend),
      h('td', {}, fmtDate(ep.last_active)),
      h('td', {},
        h('button', { class: 'btn small', testid: `endpoint-save-${ep.id}`, onclick: saveEp }, 'Save'), ' ',
        h('button', { class: 'btn small', testid: `endpoint-start-${ep.id}`, onclick: () => act(ep, 'start') }, 'Start'), ' ',
        h('button', { class: 'btn small', testid: `endpoint-suspend-btn-${ep.id}`, onclick: () => act(ep, 'suspend') }, 'Suspend'), ' ',
        h('button', { class: 'btn small', testid: `endpoint-restart-${ep.id}`, onclick: () => act(ep, 'restart') }, 'Restart')));
  });
  clear(box).append(h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, ...['Compute', 'Branch', 'Type', 'State', 'Size', 'Scale to zero', 'Last active', ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows)));
}
