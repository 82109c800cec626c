// @neondatabase/toolkit exactly as its README uses it: createProject, sql(), deleteProject.
// The toolkit takes only an API key; its API client (the documented `toolkit.apiClient`)
// is an axios-based client whose base URL is the one thing changed, to NEON_API_HOST.
// Env: NEON_API_KEY, NEON_API_HOST, NODE_EXTRA_CA_CERTS (Argon's CA for sql()).
import { NeonToolkit } from '@neondatabase/toolkit';

const toolkit = new NeonToolkit(process.env.NEON_API_KEY);
toolkit.apiClient.instance.defaults.baseURL = process.env.NEON_API_HOST;

const project = await toolkit.createProject({ name: 'toolkit-made' });
await toolkit.sql(project, `CREATE TABLE IF NOT EXISTS users (
  id UUID PRIMARY KEY, name VARCHAR(255) NOT NULL)`);
await toolkit.sql(project, `INSERT INTO users (id, name) VALUES (gen_random_uuid(), 'Sam Smith')`);
const rows = await toolkit.sql(project, 'SELECT name, current_user AS who FROM users');
const uri = project.connectionURIs[0].connection_uri;
await toolkit.deleteProject(project);
console.log(JSON.stringify({ projectId: project.project.id, name: project.project.name,
                             uri, rows }));
