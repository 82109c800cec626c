// @neondatabase/serverless against `argon local`, configured as Neon Local's docs show:
// one fixed string postgres://neon:npg@localhost:<port>/<db>, fetchEndpoint pointed at the
// door's /sql, poolQueryViaFetch, and the WebSocket (wsProxy) on the same port.
// Env: DOOR_PORT, DB_NAME, TABLE (a table "(x int)" to write to), PASSWORD (default npg).
// Prints one JSON document; a failure exits non-zero with the error on stderr.
import { neon, neonConfig, Pool } from '@neondatabase/serverless';
import ws from 'ws';
import pg from 'pg';

const { DOOR_PORT: port, DB_NAME: db, TABLE: table } = process.env;
const password = process.env.PASSWORD ?? 'npg';
const url = `postgres://neon:${password}@localhost:${port}/${db}`;
neonConfig.webSocketConstructor = ws;
neonConfig.fetchEndpoint = `http://localhost:${port}/sql`;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineTLS = false;
neonConfig.pipelineConnect = false;
neonConfig.wsProxy = () => `localhost:${port}/v2`;

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { code: e.code ?? null, message: String(e.message) };
  }
}

const out = {};
const sql = neon(url);
out.http = await sql`SELECT current_database() AS db, ${41}::int + 1 AS n`;
await sql.query(`INSERT INTO ${table} VALUES ($1)`, [1]);

neonConfig.poolQueryViaFetch = true;
const fetchPool = new Pool({ connectionString: url });
out.viaFetch = (await fetchPool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows;
await fetchPool.end();

neonConfig.poolQueryViaFetch = false;
const pool = new Pool({ connectionString: url });
const client = await pool.connect();
await client.query('BEGIN');
await client.query(`INSERT INTO ${table} VALUES (2), (3)`);
await client.query('COMMIT');
out.ws = (await client.query(`SELECT array_agg(x ORDER BY x) AS xs, current_user AS u FROM ${table}`)).rows;
client.release();
await pool.end();

// the driver's default: the password sent with the startup packet, not waiting for the ask
neonConfig.pipelineConnect = 'password';
const pipelined = new Pool({ connectionString: url });
out.pipelined = (await pipelined.query('SELECT 7 AS seven')).rows;
await pipelined.end();
neonConfig.pipelineConnect = false;

out.badPassword = await failure(neon(`postgres://neon:wrong@localhost:${port}/${db}`)`SELECT 1`);
const badPool = new Pool({ connectionString: `postgres://neon:wrong@localhost:${port}/${db}` });
out.badPasswordWs = await failure(badPool.query('SELECT 1'));
await badPool.end().catch(() => {});
// node-postgres with the string Neon Local's guide gives it (TLS, certificate not checked)
const nodePg = new pg.Client(`${url}?sslmode=no-verify`);
await nodePg.connect();
out.nodePg = (await nodePg.query('SELECT count(*)::int AS n, current_database() AS db FROM ' + table)).rows;
await nodePg.end();
console.log(JSON.stringify(out));
