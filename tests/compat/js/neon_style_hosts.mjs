// Neon's clients exactly as their docs use them, against Argon's Neon-style hosts: no
// fetchEndpoint, wsProxy or useSecureWebSocket override, only NODE_EXTRA_CA_CERTS.
// Env: DATABASE_URL (the string Argon printed), MODE (http | ws | pg).
// Prints one JSON document; a failure exits non-zero with the error on stderr.
import { neon, neonConfig, Pool } from '@neondatabase/serverless';
import pg from 'pg';
import ws from 'ws';

const { DATABASE_URL: url, MODE: mode } = process.env;
// Node 20 has no global WebSocket; this is the driver's documented Node setup.
neonConfig.webSocketConstructor = ws;

async function httpMode() {
  const sql = neon(url);
  const rows = await sql`SELECT ${41}::int + 1 AS n, current_user AS who`;
  const tx = await sql.transaction([sql`SELECT 1 AS a`, sql`SELECT 2 AS b`]);
  return { rows, tx, endpoint: neonConfig.fetchEndpoint(new URL(url.replace(/^postgres(ql)?:/, 'http:')).hostname) };
}

async function wsMode() {
  const pool = new Pool({ connectionString: url });
  const rows = (await pool.query('SELECT $1::int * 2 AS n', [21])).rows;
  const client = await pool.connect();
  await client.query('BEGIN');
  const inTx = (await client.query('SELECT txid_current() IS NOT NULL AS ok')).rows;
  await client.query('COMMIT');
  client.release();
  await pool.end();
  return { rows, inTx };
}

// node-postgres: sslmode=require means full verification (pg-connection-string 2.x)
async function pgMode() {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const stream = client.connection.stream;
  const tls = { authorized: stream.authorized === true,
                san: stream.getPeerCertificate().subjectaltname,
                servername: stream.servername };
  const rows = (await client.query('SELECT 1 AS one, current_user AS who')).rows;
  await client.end();
  return { tls, rows };
}

const modes = { http: httpMode, ws: wsMode, pg: pgMode };
console.log(JSON.stringify(await modes[mode]()));
