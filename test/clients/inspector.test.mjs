// The MCP Inspector's CLI mode against the mcp-secure binary: tools/list
// from a command line, and tools/call through the example Inspector config
// in examples/clients/inspector/mcp.json.
//
// The Inspector runs from node_modules (never through npx), and where the
// machine allows it inside a network namespace with no interfaces up, which
// proves it needs nothing from the network at run time.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { binPath, makeEnv, repoRoot, requireBinary, run } from './lib.mjs';

const require = createRequire(import.meta.url);
const inspectorPkg = require.resolve('@modelcontextprotocol/inspector/package.json');
const inspectorCli = path.join(
  path.dirname(inspectorPkg),
  JSON.parse(readFileSync(inspectorPkg, 'utf8')).bin['mcp-inspector'],
);

// unshare -n gives the process a network namespace of its own, with no
// interface up. It needs privileges a developer may not have.
const offline = spawnSync('unshare', ['-n', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Runs the Inspector CLI with args and returns its stdout parsed as JSON. */
async function inspector(e, args) {
  const argv = [process.execPath, inspectorCli, '--cli', ...args];
  const [command, ...rest] = offline ? ['unshare', '-n', ...argv] : argv;
  const res = await run(command, rest, {
    env: {
      ...process.env,
      ...e.env,
      // The Inspector starts its CLI with the `node` found on PATH.
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
    },
    timeoutMs: 60_000,
  });
  const detail = `exit ${res.code} signal ${res.signal}${res.timedOut ? ' (timed out)' : ''}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`;
  assert.equal(res.code, 0, detail);
  try {
    return JSON.parse(res.stdout);
  } catch (err) {
    assert.fail(`Inspector output is not JSON (${err.message}): ${detail}`);
  }
}

describe('MCP Inspector CLI', () => {
  let e;

  before(() => {
    requireBinary();
    e = makeEnv();
  });

  after(() => e?.cleanup());

  it('runs tools/list', async (t) => {
    t.diagnostic(
      offline
        ? 'the Inspector runs in a network namespace with no interface up (unshare -n)'
        : 'unshare -n is not permitted here: the Inspector runs with the network present',
    );
    const out = await inspector(e, [binPath, 'serve', '--policy', e.policy, '--method', 'tools/list']);
    const names = out.tools.map((tool) => tool.name);
    for (const name of ['search_tools', 'list_categories', 'web_search']) {
      assert.ok(names.includes(name), `tools/list lacks ${name}: ${names.join(', ')}`);
    }
  });

  it('runs tools/call list_categories through the example config', async (t) => {
    // The example as a user would fill it in: the built binary and a policy.
    const example = readFileSync(path.join(repoRoot, 'examples', 'clients', 'inspector', 'mcp.json'), 'utf8');
    const config = path.join(e.dir, 'inspector.json');
    writeFileSync(
      config,
      example
        .replaceAll('/absolute/path/to/bin/mcp-secure', binPath)
        .replaceAll('/absolute/path/to/policy.yaml', e.policy),
    );
    const out = await inspector(e, [
      '--config',
      config,
      '--server',
      'mcp-secure',
      '--method',
      'tools/call',
      '--tool-name',
      'list_categories',
    ]);
    assert.notEqual(out.isError, true, JSON.stringify(out));
    const cats = out.structuredContent?.categories?.map((c) => c.category) ?? [];
    assert.ok(cats.includes('discovery'), `categories: ${cats}`);
    assert.match(out.content?.[0]?.text ?? '', /discovery/);
    // The call went through the policy, which recorded it.
    const rec = e.records().findLast((r) => r.kind === 'tool_call' && r.tool === 'list_categories');
    assert.equal(rec?.result, 'allow', JSON.stringify(rec));
  });
});
