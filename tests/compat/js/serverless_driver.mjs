// @neondatabase/serverless against a running Argon: SQL over HTTP (neon()) and Pool/Client
// over the proxy's WebSocket.  Env: DATABASE_URL (the API's connection string), HTTP_PORT,
// TABLE (an empty table "(x int)" the script may write to), MODE (http | ws | via_fetch).
// Prints one JSON document; a failure exits non-zero with the error on stderr.
import { neon, neonConfig, Pool, Client } from '@neondatabase/serverless';
import ws from 'ws';

const { DATABASE_URL: url, HTTP_PORT: httpPort, TABLE: table, MODE: mode } = process.env;
neonConfig.webSocketConstructor = ws;
neonConfig.useSecureWebSocket = false;
neonConfig.wsProxy = (host, port) => `127.0.0.1:${httpPort}/v2?address=${host}:${port}`;
neonConfig.fetchEndpoint = () => `http://127.0.0.1:${httpPort}/sql`;

// What a caller sees of an error: the SQLSTATE and message, not a stack.
async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { code: e.code ?? null, message: String(e.message) };
  }
}

async function httpMode() {
  const sql = neon(url);
  const out = {};
  const big = '9007199254740993';
  out.types = await sql`SELECT ${41}::int + 1 AS i, ${big}::int8 AS big,
      ${'12345678901234567890.50'}::numeric AS num, ${'{"a":[1,2],"b":"x"}'}::json AS j,
      '{"k":true}'::jsonb AS jb, ARRAY[1,2,3] AS ints, ARRAY['a','b c'] AS texts,
      NULL::text AS nothing, true AS yes, ${false}::bool AS no,
      '2024-02-03 04:05:06.789+00'::timestamptz AS ts, ${"it's"}::text AS s`;
  out.query = await sql.query('SELECT $1::text || $2::text AS c, $3::int * 2 AS d',
                              ['ab', 'cd', 21]);
  out.tx = await sql.transaction([
    sql`SELECT current_setting('transaction_isolation') AS iso`,
    sql`SELECT current_setting('transaction_read_only') AS ro`,
    sql.query('SELECT $1::int AS n', [7]),
  ], { isolationLevel: 'Serializable', readOnly: true });
  out.readOnlyWrite = await failure(sql.transaction(
    [sql.query(`INSERT INTO ${table} VALUES (1)`)], { readOnly: true }));
  out.rolledBack = await failure(sql.transaction([
    sql.query(`INSERT INTO ${table} VALUES (2)`),
    sql`SELECT 1 / 0 AS boom`,
  ]));
  out.countAfter = await sql.query(`SELECT count(*)::int AS n FROM ${table}`);
  const full = await neon(url, { fullResults: true })`SELECT 1 AS a, 'x' AS b`;
  out.full = { command: full.command, rowCount: full.rowCount, rows: full.rows,
               fields: full.fields.map((f) => f.name), rowAsArray: full.rowAsArray };
  out.arrays = await neon(url, { arrayMode: true })`SELECT 1 AS a, 'x' AS b`;
  out.badSql = await failure(sql`SELEC 1`);
  return out;
}

async function wsMode() {
  const out = {};
  const pool = new Pool({ connectionString: url });
  out.pool = (await pool.query('SELECT $1::int + 1 AS n, $2::text AS t', [41, 'hi'])).rows;
  const client = await pool.connect();
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${table} VALUES (10), (20)`);
  out.inTx = (await client.query(`SELECT sum(x)::int AS s FROM ${table}`)).rows;
  await client.query('COMMIT');
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${table} VALUES (99)`);
  await client.query('ROLLBACK');
  out.afterRollback = (await client.query(`SELECT array_agg(x ORDER BY x) AS xs FROM ${table}`)).rows;
  out.error = await failure(client.query('SELECT 1 / 0'));
  out.usableAfterError = (await client.query('SELECT 5 AS five')).rows;
  client.release();
  await pool.end();

  const listener = new Client(url);
  await listener.connect();
  await listener.query('LISTEN compat_chan');
  const got = new Promise((resolve) => listener.on('notification',
    (n) => resolve({ channel: n.channel, payload: n.payload })));
  const sender = new Client(url);
  await sender.connect();
  await sender.query("SELECT pg_notify('compat_chan', 'hello from ws')");
  out.notification = await got;
  await sender.end();
  await listener.end();
  return out;
}

// Pool.query over HTTP: the WebSocket proxy points at a closed port so only fetch can work.
async function viaFetchMode() {
  let fetches = 0;
  neonConfig.poolQueryViaFetch = true;
  neonConfig.fetchFunction = (...args) => { fetches += 1; return fetch(...args); };
  neonConfig.wsProxy = () => '127.0.0.1:1/closed';
  const pool = new Pool({ connectionString: url });
  const rows = (await pool.query('SELECT $1::int * 3 AS n', [14])).rows;
  await pool.end();
  return { rows, fetches };
}

const modes = { http: httpMode, ws: wsMode, via_fetch: viaFetchMode };
console.log(JSON.stringify(await modes[mode]()));
