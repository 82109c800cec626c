// Drives Argon with the official @neondatabase/api-client through a project's life cycle.
// Env: ARGON_API_URL (…/api/v2), ARGON_API_KEY, NAME. Prints one JSON summary on stdout.
import { createApiClient } from '@neondatabase/api-client';

const api = createApiClient({ apiKey: process.env.ARGON_API_KEY, baseURL: process.env.ARGON_API_URL });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Mutations may answer 423 while an operation runs: Neon clients retry, so do we.
async function retry423(fn) {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (err?.response?.status === 423 && i < 300) { await sleep(200); continue; }
      throw err;
    }
  }
}

async function waitOps(projectId, ops) {
  for (const op of ops ?? []) {
    for (let i = 0; i < 600; i++) {
      const { data } = await api.getProjectOperation(projectId, op.id);
      if (['finished', 'skipped', 'cancelled'].includes(data.operation.status)) break;
      if (['failed', 'error'].includes(data.operation.status)) throw new Error(`operation ${op.id} ${data.operation.status}: ${data.operation.error}`);
      await sleep(200);
    }
  }
}

const out = {};
const name = process.env.NAME;
const { data: created } = await api.createProject({ project: { name } });
const pid = created.project.id;
out.project = { id: pid, name: created.project.name, default_branch: created.branch.name,
  databases: created.databases.map((d) => d.name), roles: created.roles.map((r) => r.name),
  connection_uris: created.connection_uris.length };
try {
  await waitOps(pid, created.operations);
  const { data: list } = await api.listProjects({ search: name });
  out.listed = list.projects.map((p) => p.id);
  out.get_name = (await api.getProject(pid)).data.project.name;
  const { data: upd } = await retry423(() => api.updateProject(pid, { project: { name: `${name}-renamed` } }));
  out.renamed = upd.project.name;
  await waitOps(pid, upd.operations);

  const main = created.branch;
  const { data: br } = await retry423(() => api.createProjectBranch(pid, {
    branch: { name: 'feature/x', parent_id: main.id }, endpoints: [{ type: 'read_write' }] }));
  await waitOps(pid, br.operations);
  out.branch = { name: br.branch.name, parent_id: br.branch.parent_id, endpoints: br.endpoints.length,
    main_id: main.id };
  const bid = br.branch.id;
  out.count = (await api.countProjectBranches({ projectId: pid })).data.count;
  out.branches = (await api.listProjectBranches({ projectId: pid, search: 'feature' })).data.branches.map((b) => b.name);
  out.get_branch = (await api.getProjectBranch(pid, bid)).data.branch.current_state;
  const { data: bu } = await retry423(() => api.updateProjectBranch(pid, bid, { branch: { name: 'feature/y' } }));
  out.branch_renamed = bu.branch.name;
  out.branch_endpoints = (await api.listProjectBranchEndpoints(pid, bid)).data.endpoints.map((e) => e.type);

  const { data: role } = await retry423(() => api.createProjectBranchRole(pid, bid, { role: { name: 'app' } }));
  await waitOps(pid, role.operations);
  out.role_password_given = typeof role.role.password === 'string' && role.role.password.length > 0;
  const { data: db } = await retry423(() => api.createProjectBranchDatabase(pid, bid, { database: { name: 'appdb', owner_name: 'app' } }));
  await waitOps(pid, db.operations);
  out.databases = (await api.listProjectBranchDatabases(pid, bid)).data.databases.map((d) => d.name);
  out.roles = (await api.listProjectBranchRoles(pid, bid)).data.roles.map((r) => r.name);
  const revealed = (await api.getProjectBranchRolePassword(pid, bid, 'app')).data.password;
  out.reveal_matches = revealed === role.role.password;
  const { data: reset } = await retry423(() => api.resetProjectBranchRolePassword(pid, bid, 'app'));
  await waitOps(pid, reset.operations);
  out.reset_changed = reset.role.password !== role.role.password;
  out.uri = (await api.getConnectionUri({ projectId: pid, branch_id: main.id, database_name: 'neondb', role_name: 'neondb_owner' })).data.uri;
  out.operations = (await api.listProjectOperations({ projectId: pid })).data.operations.length;

  const { data: dd } = await retry423(() => api.deleteProjectBranchDatabase(pid, bid, 'appdb'));
  await waitOps(pid, dd.operations);
  const { data: rd } = await retry423(() => api.deleteProjectBranchRole(pid, bid, 'app'));
  await waitOps(pid, rd.operations);
  const { data: bd } = await retry423(() => api.deleteProjectBranch({ projectId: pid, branchId: bid }));
  await waitOps(pid, bd.operations);
  out.after_delete = (await api.listProjectBranches({ projectId: pid })).data.branches.map((b) => b.name);
  try {
    await api.getProjectBranch(pid, bid);
    out.deleted_branch_status = 200;
  } catch (err) {
    out.deleted_branch_status = err.response?.status;
    out.deleted_branch_error = err.response?.data;
  }
} catch (err) {
  // Leave nothing behind when the life cycle breaks half-way.
  await retry423(() => api.deleteProject(pid)).catch(() => {});
  throw err;
}
// On success the project stays, so the caller can connect with out.uri, then delete it
// with deleteProject.mjs.
process.stdout.write(JSON.stringify(out) + '\n');
