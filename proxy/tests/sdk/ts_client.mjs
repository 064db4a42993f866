#!/usr/bin/env node
// The official TypeScript MCP SDK (@modelcontextprotocol/sdk) as a client of mcp-proxy in
// front of mock-mcp.
//
// Usage: node ts_client.mjs URL KEY
//
// Connects with the SDK's `Client` and `StreamableHTTPClientTransport` (initialize +
// Mcp-Session-Id: the 2025-11-25 era), sending `Authorization: Bearer KEY`, and checks the
// mock's whole surface with exact values. One line per check; the first failure exits 1 with
// a message naming the check. Run by proxy/tests/sdk_clients.rs; works directly against a
// mock-mcp URL too (the mock ignores the key). Dependencies: `npm ci` in this folder.


import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isDeepStrictEqual, inspect } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LATEST_PROTOCOL_VERSION,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const TOOLS = [
  'add', 'bump', 'echo', 'elicit', 'fail', 'initial_roots', 'log', 'meta', 'poke', 'progress',
  'roots', 'sample', 'sleep', 'structured',
];
const STATIC_RESOURCES = [
  'mock://static/readme', 'mock://static/config.json', 'mock://static/logo.png', 'mock://counter',
];
const TEMPLATES = ['mock://items/{id}'];
const PROMPTS = ['greet', 'summarize', 'plain'];
const LOGO_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const ROOTS = ['file:///a', 'file:///b'];
const WAIT_MS = 5000;
const QUIET_MS = 300;

class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

function expect(name, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    fail(`${name}: expected ${inspect(want, { depth: 5 })}, got ${inspect(got, { depth: 5 })}`);
  }
}

function sdkVersion() {
  const require = createRequire(import.meta.url);
  const main = require.resolve('@modelcontextprotocol/sdk/client/index.js');
  const root = main.slice(0, main.indexOf('/dist/'));
  return JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).version;
}

/** Every notification and server→client request the client saw, in arrival order. */
class Recorder {
  events = [];
  waiters = new Set();

  push(kind, value) {
    this.events.push({ kind, value });
    for (const wake of this.waiters) wake();
  }

  kinds() {
    return this.events.map((e) => e.kind);
  }

  async waitFor(what, pred) {
    const deadline = Date.now() + WAIT_MS;
    while (!pred(this.events)) {
      const left = deadline - Date.now();
      if (left <= 0) fail(`timed out after ${WAIT_MS} ms waiting for ${what}; recorded ${inspect(this.kinds())}`);
      await new Promise((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  logs() {
    return this.events.filter((e) => e.kind === 'notifications/message').map((e) => e.value);
  }
}

function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
}

async function allPages(list, field) {
  const items = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const page = await list(cursor === undefined ? undefined : { cursor });
    pages += 1;
    items.push(...page[field]);
    cursor = page.nextCursor;
    if (cursor === undefined) return { items, pages };
    if (pages > 50) fail(`${field}: more than 50 pages, cursor ${cursor}`);
  }
}

async function main(url, key) {
  const started = performance.now();
  const rec = new Recorder();
  let count = 0;
  const ok = (name, detail) => {
    count += 1;
    console.log(`ok   ${name}: ${detail}`);
  };

  const client = new Client(
    { name: 'mcp-proxy-sdk-test-ts', version: '0' },
    { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    const prompt = request.params.messages
      .flatMap((m) => (Array.isArray(m.content) ? m.content : [m.content]))
      .filter((c) => c.type === 'text')
      .map((c) => c.text)
      .join('');
    rec.push('sampling/createMessage', { prompt, maxTokens: request.params.maxTokens });
    return {
      role: 'assistant',
      content: { type: 'text', text: `reply to ${prompt}` },
      model: 'mock-model',
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    const message = request.params.message;
    rec.push('elicitation/create', message);
    if (message.includes('decline')) return { action: 'decline' };
    if (message.includes('cancel')) return { action: 'cancel' };
    return { action: 'accept', content: { name: 'Ferris' } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    rec.push('roots/list', null);
    return { roots: ROOTS.map((uri) => ({ uri })) };
  });
  for (const schema of [
    LoggingMessageNotificationSchema,
    ResourceUpdatedNotificationSchema,
    ToolListChangedNotificationSchema,
    ResourceListChangedNotificationSchema,
    PromptListChangedNotificationSchema,
  ]) {
    client.setNotificationHandler(schema, (n) => rec.push(n.method, n.params));
  }
  client.fallbackNotificationHandler = async (n) => rec.push(n.method, n.params);
  const transportErrors = [];
  client.onerror = (e) => transportErrors.push(e);

  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });

  const callText = async (name, args, options) => {
    const result = await client.callTool({ name, arguments: args }, undefined, options);
    if (result.isError) fail(`tools/call ${name}: unexpected tool error ${inspect(textOf(result))}`);
    return textOf(result);
  };

  await client.connect(transport);
  const server = client.getServerVersion();
  console.log(
    `typescript @modelcontextprotocol/sdk ${sdkVersion()}: offered ${LATEST_PROTOCOL_VERSION}, ` +
      `negotiated protocol ${transport.protocolVersion}, server ${server?.name} ${server?.version}`,
  );
  ok('initialize', `protocolVersion ${transport.protocolVersion}, Mcp-Session-Id ${transport.sessionId ? 'set' : 'MISSING'}`);
  if (!transport.sessionId) fail('initialize: no Mcp-Session-Id');

  try {
    await client.ping();
    ok('ping', 'empty result');

    let { items: tools, pages } = await allPages((p) => client.listTools(p), 'tools');
    expect('tools/list names', tools.map((t) => t.name).sort(), TOOLS);
    ok('tools/list', `${tools.length} tools in ${pages} page(s): ${tools.map((t) => t.name).join(', ')}`);

    expect('echo', await callText('echo', { text: 'hello' }), 'hello');
    ok('tools/call echo', "'hello'");

    expect('add', await callText('add', { a: 2, b: 3 }), '5');
    ok('tools/call add', "2 + 3 = '5'");

    expect('sleep', await callText('sleep', { ms: 10 }), 'slept 10ms');
    ok('tools/call sleep', "'slept 10ms'");

    let result = await client.callTool({ name: 'structured', arguments: { a: 2, b: 3 } });
    expect('structured isError', Boolean(result.isError), false);
    expect('structured structuredContent', result.structuredContent, { sum: 5 });
    ok('tools/call structured', `structuredContent ${JSON.stringify(result.structuredContent)}`);

    result = await client.callTool({ name: 'fail', arguments: { message: 'boom' } });
    expect('fail isError', result.isError, true);
    expect('fail text', textOf(result), 'boom');
    ok('tools/call fail', "isError true, 'boom'");

    result = await client.callTool({ name: 'meta', arguments: {}, _meta: { 'sdk/probe': 'ts' } });
    expect('meta _meta', result._meta?.['mock/echo'], { 'sdk/probe': 'ts' });
    ok('tools/call meta', `_meta ${JSON.stringify(result._meta)}`);

    const progress = [];
    const steps = 4;
    const text = await callText('progress', { steps, ms: 20 }, { onprogress: (p) => progress.push(p) });
    expect('progress result', text, `done ${steps} steps`);
    expect(
      'progress notifications',
      progress,
      Array.from({ length: steps }, (_, i) => ({ progress: i + 1, total: steps, message: `step ${i + 1}/${steps}` })),
    );
    ok('tools/call progress', `onprogress got [${progress.map((p) => p.progress).join(', ')}] of ${steps}`);

    expect('sample', await callText('sample', { prompt: 'hello' }), 'sampled: reply to hello');
    expect(
      'sampling/createMessage seen by the handler',
      rec.events.filter((e) => e.kind === 'sampling/createMessage').map((e) => e.value),
      [{ prompt: 'hello', maxTokens: 100 }],
    );
    ok('tools/call sample', "'sampled: reply to hello' (sampling handler: prompt 'hello', maxTokens 100)");

    expect('elicit accept', await callText('elicit', { message: 'your name?' }), 'accepted: {"name":"Ferris"}');
    ok('tools/call elicit (accept)', `'accepted: {"name":"Ferris"}'`);
    expect('elicit decline', await callText('elicit', { message: 'please decline' }), 'declined');
    ok('tools/call elicit (decline)', "'declined'");
    expect('elicit cancel', await callText('elicit', { message: 'please cancel' }), 'cancelled');
    ok('tools/call elicit (cancel)', "'cancelled'");

    expect('roots', await callText('roots', {}), ROOTS.join(','));
    ok('tools/call roots', `'${ROOTS.join(',')}'`);

    let resources;
    ({ items: resources, pages } = await allPages((p) => client.listResources(p), 'resources'));
    expect('resources/list URIs', resources.map((r) => r.uri), STATIC_RESOURCES);
    ok('resources/list', `${resources.length} resources in ${pages} page(s)`);

    let templates;
    ({ items: templates, pages } = await allPages((p) => client.listResourceTemplates(p), 'resourceTemplates'));
    expect('resources/templates/list', templates.map((t) => t.uriTemplate), TEMPLATES);
    ok('resources/templates/list', `${JSON.stringify(TEMPLATES)} in ${pages} page(s)`);

    const readOne = async (uri) => {
      const r = await client.readResource({ uri });
      expect(`resources/read ${uri}: number of contents`, r.contents.length, 1);
      expect(`resources/read ${uri}: uri`, r.contents[0].uri, uri);
      return r.contents[0];
    };
    let c = await readOne('mock://static/readme');
    expect('readme text', c.text, 'mock-mcp readme');
    ok('resources/read readme', "'mock-mcp readme'");
    c = await readOne('mock://static/config.json');
    expect('config.json text', c.text, '{"mode":"mock"}');
    expect('config.json mimeType', c.mimeType, 'application/json');
    ok('resources/read config.json', `'{"mode":"mock"}' application/json`);
    c = await readOne('mock://static/logo.png');
    expect('logo.png blob', c.blob, LOGO_PNG_BASE64);
    expect('logo.png mimeType', c.mimeType, 'image/png');
    ok('resources/read logo.png', 'blob (1x1 PNG) image/png');
    c = await readOne('mock://items/abc');
    expect('items/abc text', c.text, 'item abc');
    ok('resources/read mock://items/abc', "'item abc'");

    await client.subscribeResource({ uri: 'mock://counter' });
    const bumped = await callText('bump', {});
    await rec.waitFor('notifications/resources/updated for mock://counter', (ev) =>
      ev.some((e) => e.kind === 'notifications/resources/updated' && e.value?.uri === 'mock://counter'),
    );
    c = await readOne('mock://counter');
    expect('counter after bump', c.text, bumped);
    ok('resources/subscribe + bump', `notifications/resources/updated mock://counter, counter = ${bumped}`);

    let prompts;
    ({ items: prompts, pages } = await allPages((p) => client.listPrompts(p), 'prompts'));
    expect('prompts/list names', prompts.map((p) => p.name), PROMPTS);
    ok('prompts/list', `${JSON.stringify(PROMPTS)} in ${pages} page(s)`);

    for (const [style, want] of [[undefined, 'Hello, Ferris!'], ['pirate', 'Ahoy, Ferris!']]) {
      const args = style === undefined ? { name: 'Ferris' } : { name: 'Ferris', style };
      const got = await client.getPrompt({ name: 'greet', arguments: args });
      const what = `prompts/get greet ${JSON.stringify(args)}`;
      expect(`${what} messages`, got.messages.length, 1);
      expect(`${what} role`, got.messages[0].role, 'user');
      expect(`${what} text`, got.messages[0].content.text, want);
      ok(`prompts/get greet style=${style ?? 'None'}`, `'${want}'`);
    }

    const greet = { type: 'ref/prompt', name: 'greet' };
    const items = { type: 'ref/resource', uri: 'mock://items/{id}' };
    for (const [ref, arg, prefix, want] of [
      [greet, 'style', 'p', ['pirate']],
      [greet, 'name', 'b', ['bob']],
      [items, 'id', 'ab', ['abc', 'abd']],
    ]) {
      const got = await client.complete({ ref, argument: { name: arg, value: prefix } });
      const what = `completion/complete ${ref.name ?? ref.uri} ${arg}='${prefix}'`;
      expect(what, got.completion.values, want);
      ok(what, JSON.stringify(want));
    }

    // logging: the session's default level (info) first, then setLevel warning.
    const logNamed = (data) => rec.logs().find((l) => l.data === data);
    expect('log info (default level)', await callText('log', { level: 'info', message: 'ts-info-1' }), 'logged');
    await rec.waitFor('notifications/message ts-info-1', () => logNamed('ts-info-1') !== undefined);
    expect('log ts-info-1 level', logNamed('ts-info-1').level, 'info');
    expect('log ts-info-1 logger', logNamed('ts-info-1').logger, 'mock');
    ok('tools/call log info (default level info)', "'logged', notification received, logger 'mock'");

    await client.setLoggingLevel('warning');
    ok('logging/setLevel warning', 'empty result');
    expect(
      "log info after setLevel warning: the mock's answer",
      await callText('log', { level: 'info', message: 'ts-info-2' }),
      'filtered',
    );
    expect('log error', await callText('log', { level: 'error', message: 'ts-error' }), 'logged');
    await rec.waitFor('notifications/message ts-error', () => logNamed('ts-error') !== undefined);
    expect('log ts-error level', logNamed('ts-error').level, 'error');
    expect('log ts-error logger', logNamed('ts-error').logger, 'mock');
    await new Promise((r) => setTimeout(r, QUIET_MS));
    if (logNamed('ts-info-2') !== undefined) fail('log info after setLevel warning: the notification arrived anyway');
    ok('tools/call log info after setLevel warning', "'filtered', no notification");
    ok('tools/call log error after setLevel warning', "'logged', notification received, logger 'mock'");

    for (const [what, method] of [
      ['tools', 'notifications/tools/list_changed'],
      ['resources', 'notifications/resources/list_changed'],
      ['prompts', 'notifications/prompts/list_changed'],
    ]) {
      expect(`poke ${what}`, await callText('poke', { what }), 'poked');
      await rec.waitFor(method, (ev) => ev.some((e) => e.kind === method));
      ok(`tools/call poke what=${what}`, `'poked', ${method} received`);
    }

    if (transportErrors.length > 0) fail(`the transport reported errors: ${inspect(transportErrors)}`);
  } finally {
    try {
      await transport.terminateSession();
    } catch (e) {
      console.log(`note: DELETE of the session failed: ${e}`);
    }
    await client.close();
  }
  console.log(`passed ${count} checks in ${((performance.now() - started) / 1000).toFixed(2)}s`);
}

const positional = process.argv.slice(2);
if (positional.length !== 2) {
  console.error('usage: node ts_client.mjs URL KEY');
  process.exit(2);
}
try {
  await main(positional[0], positional[1]);
  process.exit(0);
} catch (e) {
  if (e instanceof CheckFailed) {
    console.log(`FAIL ${e.message}`);
  } else {
    console.log(`FAIL unexpected error: ${e?.stack ?? e}`);
  }
  process.exit(1);
}
