// Shared helpers for the client tests: where the binary is, a throwaway
// policy and audit log per server, a loopback search fixture, and a
// transport that checks every server message against the MCP schema.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CallToolResultSchema,
  EmptyResultSchema,
  InitializeResultSchema,
  JSONRPCErrorResponseSchema,
  JSONRPCMessageSchema,
  LATEST_PROTOCOL_VERSION,
  ListToolsResultSchema,
  ServerNotificationSchema,
  ServerRequestSchema,
  ServerResultSchema,
} from '@modelcontextprotocol/sdk/types.js';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

/** The binary under test: $MCP_SECURE_BIN, else bin/mcp-secure (make build). */
export const binPath = path.resolve(here, process.env.MCP_SECURE_BIN || '../../bin/mcp-secure');

/** Every request in these tests gives up after this long. */
export const requestTimeoutMs = 20_000;

export function requireBinary() {
  if (!existsSync(binPath)) {
    throw new Error(`${binPath} does not exist: run \`make build\` or set MCP_SECURE_BIN`);
  }
}

/**
 * A fresh temporary directory with a workspace, a policy file and an audit
 * log. network and tools, when given, replace the policy's network: and
 * tools: sections (complete YAML sections, top-level key included).
 */
export function makeEnv({ network, tools } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-secure-clients-'));
  const workspace = path.join(dir, 'ws');
  mkdirSync(workspace);
  const audit = path.join(dir, 'logs', 'audit.log');
  const policy = path.join(dir, 'policy.yaml');
  const q = JSON.stringify; // a JSON string is a valid YAML double-quoted scalar
  writeFileSync(
    policy,
    [
      'version: "1.0"',
      network ??
        'network:\n  allowed_endpoints:\n    - host: lite.duckduckgo.com\n      ports: [443]\n  allow_dns: true\n  dns_allowlist: [lite.duckduckgo.com]',
      'filesystem:',
      `  allowed_paths: [${q(workspace + '/**')}]`,
      '  denied_paths: ["**/.env"]',
      tools ?? 'tools:\n  timeout: 10\n  rate_limits:\n    default: 600',
      'audit:',
      `  log_file: ${q(audit)}`,
      '',
    ].join('\n'),
  );
  return {
    dir,
    workspace,
    audit,
    policy,
    /** Environment that keeps the server's files inside dir. */
    env: {
      HOME: dir,
      XDG_CONFIG_HOME: path.join(dir, 'config'),
      XDG_DATA_HOME: path.join(dir, 'data'),
    },
    /** The audit log as parsed records. */
    records() {
      return readFileSync(audit, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l));
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Serves plugins/websearch/testdata/results.html under /lite/ on 127.0.0.1. */
export async function startSearchFixture() {
  const page = readFileSync(path.join(repoRoot, 'plugins', 'websearch', 'testdata', 'results.html'));
  const server = createServer((req, res) => {
    if (req.url.startsWith('/lite/')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/lite/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// The result schema for each request method the tests send; anything else
// is checked against the union of all server results.
const resultSchemas = {
  initialize: InitializeResultSchema,
  ping: EmptyResultSchema,
  'tools/list': ListToolsResultSchema,
  'tools/call': CallToolResultSchema,
};

function issues(parsed) {
  return parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/**
 * Wraps a transport and checks every message the server sends against the
 * MCP schema that the SDK ships (the LATEST_PROTOCOL_VERSION schema): the
 * JSON-RPC envelope, then the request, notification or result for its
 * method. A message that fails, and a message the inner transport could not
 * even parse, is recorded in violations.
 */
export class SchemaCheckedTransport {
  constructor(inner) {
    this.inner = inner;
    this.pending = new Map(); // request id -> method
    this.violations = [];
    this.checked = 0;
    this.protocolVersion = undefined;
    this.closing = false;
  }

  get sessionId() {
    return this.inner.sessionId;
  }

  async start() {
    this.inner.onmessage = (message, extra) => {
      this.check(message);
      this.onmessage?.(message, extra);
    };
    this.inner.onerror = (error) => {
      if (!this.closing) this.violations.push(`transport error: ${error?.message ?? error}`);
      this.onerror?.(error);
    };
    this.inner.onclose = () => this.onclose?.();
    await this.inner.start();
  }

  async send(message, options) {
    if ('method' in message && 'id' in message) this.pending.set(message.id, message.method);
    await this.inner.send(message, options);
  }

  async close() {
    this.closing = true;
    await this.inner.close();
  }

  setProtocolVersion(version) {
    this.protocolVersion = version;
    this.inner.setProtocolVersion?.(version);
  }

  check(message) {
    this.checked++;
    const where = JSON.stringify(message).slice(0, 300);
    const envelope = JSONRPCMessageSchema.safeParse(message);
    if (!envelope.success) {
      this.violations.push(`not a JSON-RPC message (${issues(envelope)}): ${where}`);
      return;
    }
    let schema;
    let body = message;
    if ('method' in message) {
      schema = 'id' in message ? ServerRequestSchema : ServerNotificationSchema;
      body = { method: message.method, ...(message.params === undefined ? {} : { params: message.params }) };
    } else if ('error' in message) {
      this.pending.delete(message.id);
      schema = JSONRPCErrorResponseSchema;
    } else {
      const method = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (method === undefined) {
        this.violations.push(`result for an id that no request used: ${where}`);
        return;
      }
      schema = resultSchemas[method] ?? ServerResultSchema;
      body = message.result;
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) this.violations.push(`schema violation (${issues(parsed)}): ${where}`);
  }
}

/**
 * Starts the binary with serve --policy and connects the SDK client through
 * a schema-checking transport. The server's stderr is kept (bounded) for
 * failure messages.
 */
export async function connect(e, extraEnv = {}) {
  requireBinary();
  const inner = new StdioClientTransport({
    command: binPath,
    args: ['serve', '--policy', e.policy],
    env: { ...e.env, ...extraEnv },
    stderr: 'pipe',
  });
  let stderr = '';
  inner.stderr?.on('data', (chunk) => {
    if (stderr.length < 64 * 1024) stderr += chunk;
  });
  const transport = new SchemaCheckedTransport(inner);
  const client = new Client({ name: 'mcp-secure-client-tests', version: '1.0.0' });
  try {
    await client.connect(transport, { timeout: requestTimeoutMs });
  } catch (err) {
    await transport.close().catch(() => {});
    throw new Error(`connecting to ${binPath}: ${err.message}\nserver stderr:\n${stderr}`);
  }
  return {
    client,
    transport,
    stderr: () => stderr,
    call: (name, args) =>
      client.callTool({ name, arguments: args }, CallToolResultSchema, { timeout: requestTimeoutMs }),
    close: () => client.close(),
  };
}

export { LATEST_PROTOCOL_VERSION };

/** The text of a tool result's text content blocks. */
export function textOf(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/**
 * Runs a command in its own process group and collects its output. The
 * whole group is killed at timeoutMs, and after a normal exit too, so no
 * grandchild outlives the test.
 */
export function run(command, args, { env, timeoutMs = 60_000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c) => {
      if (stdout.length < 4 * 1024 * 1024) stdout += c;
    });
    child.stderr.on('data', (c) => {
      if (stderr.length < 256 * 1024) stderr += c;
    });
    const killGroup = () => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      killGroup();
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
