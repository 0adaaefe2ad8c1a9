// The official TypeScript SDK client against the mcp-secure binary over
// stdio. Every message the server sends is checked against the MCP schema
// shipped in the SDK (see SchemaCheckedTransport in lib.mjs).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  LATEST_PROTOCOL_VERSION,
  SchemaCheckedTransport,
  connect,
  makeEnv,
  startSearchFixture,
  textOf,
} from './lib.mjs';

function assertWireClean(session) {
  assert.deepEqual(session.transport.violations, [], `server messages that break the MCP schema:\n${session.stderr()}`);
}

describe('TypeScript SDK client', () => {
  let fixture;
  let e;
  let session;
  let toolNames = [];

  before(async () => {
    fixture = await startSearchFixture();
    e = makeEnv({
      network: 'network:\n  allowed_ranges: ["127.0.0.1/32"]\n  allow_dns: false',
    });
    session = await connect(e, {
      MCP_SECURE_WEBSEARCH_URL: fixture.url,
      MCP_SECURE_BUGTRACKER_DB: path.join(e.dir, 'data', 'bugs.db'),
    });
  });

  after(async () => {
    await session?.close();
    await fixture?.close();
    e?.cleanup();
  });

  it('negotiates the protocol version whose schema the SDK ships', () => {
    assert.equal(session.transport.protocolVersion, LATEST_PROTOCOL_VERSION);
    const info = session.client.getServerVersion();
    assert.equal(info?.name, 'mcp-secure');
    assert.ok(session.client.getServerCapabilities()?.tools, 'server advertises tools');
    assertWireClean(session);
  });

  it('lists the tools', async () => {
    const { tools } = await session.client.listTools(undefined, { timeout: 20_000 });
    toolNames = tools.map((t) => t.name);
    for (const name of ['search_tools', 'list_categories', 'web_search']) {
      assert.ok(toolNames.includes(name), `tools/list lacks ${name}: ${toolNames.join(', ')}`);
    }
    for (const tool of tools) assert.equal(tool.inputSchema.type, 'object', tool.name);
    assertWireClean(session);
  });

  it('calls search_tools', async () => {
    const res = await session.call('search_tools', { query: 'search the web', detail_level: 'summary' });
    assert.equal(res.isError ?? false, false, textOf(res));
    assert.match(textOf(res), /web_search/);
    assertWireClean(session);
  });

  it('calls list_categories', async () => {
    const res = await session.call('list_categories', {});
    assert.equal(res.isError ?? false, false, textOf(res));
    const cats = res.structuredContent?.categories?.map((c) => c.category) ?? [];
    assert.ok(cats.includes('discovery') && cats.includes('websearch'), `categories: ${cats}`);
    assertWireClean(session);
  });

  it('rejects arguments that break the tool schema', async () => {
    const res = await session.call('search_tools', { detail_level: 'everything' });
    assert.equal(res.isError, true);
    assert.match(textOf(res), /\/detail_level/);
    assertWireClean(session);
  });

  it('calls web_search against the loopback fixture', async () => {
    const res = await session.call('web_search', { query: 'golang generics', max_results: 2 });
    assert.equal(res.isError ?? false, false, textOf(res));
    assert.match(textOf(res), /https:\/\/go\.dev\/doc\/tutorial\/generics/);
    assert.equal(res.structuredContent?.count, 2);
    assertWireClean(session);
  });

  it('runs the bug tracker lifecycle when the build has it', async (t) => {
    if (!toolNames.includes('add_bug')) {
      t.skip('this build has no bug-tracker tools (add_bug is not in tools/list)');
      return;
    }
    const project = path.join(e.workspace, 'project');
    mkdirSync(project, { recursive: true });
    const init = await session.call('init_bugtracker', { project_path: project });
    assert.equal(init.isError ?? false, false, textOf(init));
    const added = await session.call('add_bug', {
      title: 'Client test bug',
      priority: 'high',
      tags: ['clients'],
      project_path: project,
    });
    assert.equal(added.isError ?? false, false, textOf(added));
    assert.match(textOf(added), /BUG-001/);
    const listed = await session.call('list_bugs', { project_path: project });
    assert.equal(listed.isError ?? false, false, textOf(listed));
    assert.match(textOf(listed), /BUG-001/);
    assert.match(textOf(listed), /Client test bug/);
    assertWireClean(session);
  });

  it('saw only schema-valid server messages', () => {
    assert.ok(session.transport.checked >= 6, `only ${session.transport.checked} messages checked`);
    assertWireClean(session);
  });
});

describe('TypeScript SDK client against a denying policy', () => {
  let e;
  let session;

  before(async () => {
    e = makeEnv({
      tools: 'tools:\n  timeout: 10\n  rate_limits:\n    default: 600\n  denied: [list_categories]',
    });
    session = await connect(e);
  });

  after(async () => {
    await session?.close();
    e?.cleanup();
  });

  it('denies a tool named in tools.denied, and audits it', async () => {
    const res = await session.call('list_categories', {});
    assert.equal(res.isError, true);
    assert.match(textOf(res), /tools\.denied/);
    const rec = e.records().findLast((r) => r.kind === 'tool_call' && r.tool === 'list_categories');
    assert.equal(rec?.result, 'deny', JSON.stringify(rec));
    assertWireClean(session);
  });

  it('still serves the tools the policy allows', async () => {
    const res = await session.call('search_tools', { query: 'categories' });
    assert.equal(res.isError ?? false, false, textOf(res));
    assertWireClean(session);
  });
});

describe('the wire-schema check', () => {
  // Messages a broken server could send; each must be caught.
  const bad = {
    'result without a request': { jsonrpc: '2.0', id: 99, result: {} },
    'tools/list without tools': { jsonrpc: '2.0', id: 1, result: { nextCursor: 'x' } },
    'tool result with a bad content block': { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text' }] } },
    'unknown notification': { jsonrpc: '2.0', method: 'notifications/made_up', params: {} },
    'error without a code': { jsonrpc: '2.0', id: 3, error: { message: 'x' } },
  };
  for (const [name, message] of Object.entries(bad)) {
    it(`catches: ${name}`, () => {
      const tr = new SchemaCheckedTransport(null);
      tr.pending.set(1, 'tools/list');
      tr.pending.set(2, 'tools/call');
      tr.check(message);
      assert.equal(tr.violations.length, 1, JSON.stringify(tr.violations));
    });
  }

  it('passes a valid tool result', () => {
    const tr = new SchemaCheckedTransport(null);
    tr.pending.set(2, 'tools/call');
    tr.check({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'ok' }] } });
    assert.deepEqual(tr.violations, []);
  });
});
