// Drives `drivevqa serve` with the official OpenAI Node SDK (tests/serve_test.cpp).
// Usage: node openai_chat.mjs <node_modules folder> <requests.json> <answers.json>
//   requests.json: {"base_url": ..., "requests": [<chat.completions.create body without stream>...]}
//   answers.json:  [{"answer", "streamed", "finish_reason", "usage", "stream_usage"}...]
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [modules, requestsFile, answersFile] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), 'noop.js'));
const OpenAI = require('openai').default ?? require('openai');

const { base_url: baseURL, requests } = JSON.parse(readFileSync(requestsFile, 'utf8'));
const client = new OpenAI({ baseURL, apiKey: process.env.DRIVEVQA_TEST_KEY ?? 'unused', maxRetries: 0 });

const answers = [];
for (const body of requests) {
  const reply = await client.chat.completions.create(body);
  let streamed = '';
  let streamUsage = null;
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) streamed += chunk.choices[0].delta?.content ?? '';
    if (chunk.usage) streamUsage = chunk.usage;
  }
  answers.push({
    answer: reply.choices[0].message.content,
    finish_reason: reply.choices[0].finish_reason,
    usage: reply.usage,
    streamed,
    stream_usage: streamUsage,
  });
}
let refused = null;
try {
  await client.chat.completions.create({ ...requests[0], model: 'gpt-4o' });
} catch (e) {
  refused = { status: e.status, message: e.message };
}
writeFileSync(answersFile, JSON.stringify({ answers, unknown_model: refused }));
