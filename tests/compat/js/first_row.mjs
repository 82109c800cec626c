// One query from one client kind, for the wake-on-connect tests.  Env: DATABASE_URL (as the
// API printed it), HTTP_PORT, CA (the proxy's CA file), CLIENT (http | ws | pg | pg_url).
// Prints {"rows": [...]} as JSON; a failure exits non-zero with the error on stderr.
import { neon, neonConfig, Pool } from '@neondatabase/serverless';
import ws from 'ws';
import pg from 'pg';
import fs from 'fs';

const { DATABASE_URL: url, HTTP_PORT: httpPort, CA: ca, CLIENT: kind } = process.env;
neonConfig.webSocketConstructor = ws;
neonConfig.useSecureWebSocket = false;
neonConfig.wsProxy = (host, port) => `127.0.0.1:${httpPort}/v2?address=${host}:${port}`;
neonConfig.fetchEndpoint = () => `http://127.0.0.1:${httpPort}/sql`;
const query = "SELECT 'awake' AS state, current_user AS who";

async function nodePostgres(config) {
  const client = new pg.Client(config);
  await client.connect();
  try {
    return (await client.query(query)).rows;
  } finally {
    await client.end();
  }
}

function withoutSslKeys(uri) {
  const u = new URL(uri);
  u.searchParams.delete('sslmode');
  u.searchParams.delete('channel_binding');
  return u.toString();
}

const clients = {
  http: async () => neon(url).query(query),
  ws: async () => {
    const pool = new Pool({ connectionString: url });
    try {
      return (await pool.query(query)).rows;
    } finally {
      await pool.end();
    }
  },
  // node-postgres reads sslmode=require as full verification: give it the proxy's CA.
  pg: async () => nodePostgres({ connectionString: withoutSslKeys(url),
                                 ssl: { ca: fs.readFileSync(ca, 'utf8') } }),
  // The printed string as is, plus sslrootcert (pg then verifies against that CA).
  pg_url: async () => nodePostgres({
    connectionString: `${url}&sslrootcert=${encodeURIComponent(ca)}` }),
};
console.log(JSON.stringify({ rows: await clients[kind]() }));
