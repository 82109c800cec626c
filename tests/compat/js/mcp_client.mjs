// Neon's MCP server started as its README says for local use (stdio, `start <api key>`),
// driven by the official MCP SDK client.  Env: NEON_API_KEY, NEON_API_HOST (Argon's API)
// and NODE_EXTRA_CA_CERTS (Argon's CA), passed on to the server.
// Protocol on stdin/stdout, one JSON document a line:
//   {"list": true}                      -> {"tools": [names]}
//   {"call": name, "arguments": {...}}  -> {"isError": bool, "text": "<content texts>"}
// A request the client itself cannot make answers {"error": message}.
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const server = new URL('../node_modules/@neondatabase/mcp-server-neon/dist/index.js',
                       import.meta.url).pathname;
const transport = new StdioClientTransport({
  command: process.execPath,
  // --no-analytics: nothing is sent to Neon's analytics host (the machine is offline)
  args: [server, 'start', process.env.NEON_API_KEY, '--no-analytics'],
  env: { ...process.env },
  stderr: 'inherit',
});
const client = new Client({ name: 'argon-compat', version: '0.0.0' });
await client.connect(transport);

async function answer(req) {
  if (req.list) {
    const { tools } = await client.listTools();
    return { tools: tools.map((t) => t.name) };
  }
  const res = await client.callTool({ name: req.call, arguments: req.arguments ?? {} },
                                    undefined, { timeout: 300000 });
  return { isError: res.isError === true,
           text: (res.content ?? []).map((c) => c.text ?? '').join('\n') };
}

console.log(JSON.stringify({ ready: true }));
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let out;
  try {
    out = await answer(JSON.parse(line));
  } catch (e) {
    out = { error: String(e?.message ?? e) };
  }
  console.log(JSON.stringify(out));
}
await client.close();
