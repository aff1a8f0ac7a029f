// Drives mcpidp's /v1/responses with the official openai npm package, unmodified:
// responses.create (plain), with stream: true, the SDK's stream helper, and
// background: true followed by retrieve. Prints one JSON line.
//
// Environment: NODE_DIR (internal/testenv/node), BASE_URL (…/v1), API_KEY, MCP_URL.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_DIR, 'package.json'));
const { OpenAI } = require('openai');

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const request = {
  model: 'gpt-test',
  user: 'node-user',
  input: 'Say hello with the echo tool',
  tools: [{ type: 'mcp', server_label: 'everything', server_url: process.env.MCP_URL, allowed_tools: ['echo'], require_approval: 'never' }],
};

const plain = await client.responses.create(request);

const stream = await client.responses.create({ ...request, stream: true });
const types = [];
let text = '';
let completed = null;
for await (const event of stream) {
  types.push(event.type);
  if (event.type === 'response.output_text.delta') text += event.delta;
  if (event.type === 'response.completed') completed = event.response;
}

const helper = await client.responses.stream(request).finalResponse();

const queued = await client.responses.create({ ...request, background: true });
let retrieved = queued;
for (let i = 0; i < 300 && (retrieved.status === 'queued' || retrieved.status === 'in_progress'); i++) {
  await new Promise((r) => setTimeout(r, 100));
  retrieved = await client.responses.retrieve(queued.id);
}

const summary = (r) => ({ id: r.id, status: r.status, text: r.output_text, types: r.output.map((o) => o.type), usage: r.usage, output: r.output });
console.log(JSON.stringify({
  plain: summary(plain),
  stream: { types, text, completed: { status: completed.status, types: completed.output.map((o) => o.type) } },
  helper: { status: helper.status, text: helper.output_text, types: helper.output.map((o) => o.type) },
  background: { queuedStatus: queued.status, background: queued.background, ...summary(retrieved) },
}));
