// Deletes a project with the api-client and reports whether it is gone (404 afterwards).
// Env: ARGON_API_URL, ARGON_API_KEY, PROJECT_ID.
import { createApiClient } from '@neondatabase/api-client';

const api = createApiClient({ apiKey: process.env.ARGON_API_KEY, baseURL: process.env.ARGON_API_URL });
const pid = process.env.PROJECT_ID;
let deleted;
for (let i = 0; ; i++) {
  try {
    deleted = (await api.deleteProject(pid)).data.project.id;
    break;
  } catch (err) {
    if (err?.response?.status === 423 && i < 300) { await new Promise((r) => setTimeout(r, 200)); continue; }
    throw err;
  }
}
const status = await api.getProject(pid).then(() => 200, (err) => err.response?.status);
process.stdout.write(JSON.stringify({ deleted, status_after: status }) + '\n');
