// @neondatabase/serverless Pool/Client over the proxy's WebSocket, node-postgres over TLS.
// Usage: node ws_and_pg.mjs <http port> <pg port> <ca file>; prints one JSON line.
import { Pool, Client, neonConfig } from '@neondatabase/serverless';
import ws from 'ws';
import pg from 'pg';
import fs from 'fs';

const [httpPort, pgPort, ca] = process.argv.slice(2);
neonConfig.webSocketConstructor = ws;
neonConfig.useSecureWebSocket = false;
neonConfig.wsProxy = (host, port) => `127.0.0.1:${httpPort}/v2?address=${host}:${port}`;
const url = 'postgresql://gina:pw-gina@ep-one.argon.test/postgres';
const out = {};

const pool = new Pool({ connectionString: url });
out.pool = (await pool.query('SELECT $1::int + 1 AS n', [41])).rows;
const client = await pool.connect();
await client.query('BEGIN');
await client.query('CREATE TEMP TABLE t (x int)');
await client.query('INSERT INTO t VALUES (1), (2)');
out.tx = (await client.query('SELECT sum(x)::int AS s FROM t')).rows;
await client.query('COMMIT');
client.release();
await pool.end();

const c = new Client(url);
await c.connect();
await c.query('LISTEN chan');
const got = new Promise((resolve) => c.on('notification', (n) => resolve(n.payload)));
await c.query("NOTIFY chan, 'hello'");
out.listen = await got;
await c.end();

const np = new pg.Client({
  connectionString: `postgresql://gina:pw-gina@127.0.0.1:${pgPort}/postgres?options=endpoint%3Dep-one`,
  ssl: { ca: fs.readFileSync(ca) },
});
await np.connect();
out.nodePostgres = (await np.query('SELECT 6 * 7 AS a')).rows;
await np.end();
console.log(JSON.stringify(out));
