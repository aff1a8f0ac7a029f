// Drives mcpidp's /v1/chat/completions with the official openai npm package, unmodified:
// a plain completion, a raw stream, and the SDK's stream helper. Prints one JSON line.
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
  messages: [{ role: 'user', content: 'Say hello with the echo tool' }],
  tools: [{ type: 'mcp', url: process.env.MCP_URL, allowed_tools: ['echo'] }],
};

const completion = await client.chat.completions.create(request);

const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
let content = '';
let chunks = 0;
let finish = null;
let usage = null;
const ids = new Set();
for await (const chunk of stream) {
  chunks++;
  ids.add(chunk.id);
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    if (choice.delta?.content) content += choice.delta.content;
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}

const helper = await client.chat.completions.stream(request).finalChatCompletion();

console.log(JSON.stringify({
  completion: {
    content: completion.choices[0].message.content,
    finish: completion.choices[0].finish_reason,
    usage: completion.usage,
  },
  stream: { content, chunks, finish, usage, ids: ids.size },
  helper: { content: helper.choices[0].message.content, finish: helper.choices[0].finish_reason },
}));
