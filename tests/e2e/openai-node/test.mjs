// The official openai npm client, used exactly as its README shows, against `bitrun serve`: only baseURL and
// apiKey are set. Chat, streamed chat, completions, the model list, and errors arrive as the client's own types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.BITRUN_BASE_URL;
const apiKey = process.env.BITRUN_API_KEY;
const client = new OpenAI({ baseURL, apiKey });

test('models.list names the served model', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids, ['stories260K']);
});

test('chat completion', async () => {
  const completion = await client.chat.completions.create({
    model: 'stories260K',
    messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me a story.' }],
    max_tokens: 24,
    temperature: 0,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.ok(completion.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
});

test('streamed chat gives the same text as the whole answer', async () => {
  const request = {
    model: 'stories260K',
    messages: [{ role: 'user', content: 'Once upon a time' }],
    max_tokens: 32,
    temperature: 0,
  };
  const whole = await client.chat.completions.create(request);
  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      if (choice.delta.content) text += choice.delta.content;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('text completion continues the golden story', async () => {
  const completion = await client.completions.create({
    model: 'stories260K',
    prompt: 'Once upon a time',
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0].text, ', there was a little girl');
});

test('errors arrive as the client error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'stories260K', messages: [], max_tokens: 4 }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && /messages/.test(err.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => err instanceof OpenAI.NotFoundError && err.status === 404,
  );
  const wrongKey = new OpenAI({ baseURL, apiKey: 'wrong-key' });
  await assert.rejects(
    wrongKey.completions.create({ model: 'stories260K', prompt: 'hi', max_tokens: 2 }),
    (err) => err instanceof OpenAI.AuthenticationError && err.status === 401,
  );
});
