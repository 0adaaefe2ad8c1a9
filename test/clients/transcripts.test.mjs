// Checks the wire transcripts the Go end-to-end suite records (make test
// sets MCP_SECURE_TRANSCRIPTS): every message the server wrote must be a
// valid MCP message per the schema the TypeScript SDK ships.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { SchemaCheckedTransport } from './lib.mjs';

const dir = process.env.MCP_SECURE_TRANSCRIPTS;

// Methods of the stateless protocol (2026-07-28) that the SDK's schemas do
// not describe; their results are checked only as JSON-RPC messages.
const statelessOnly = new Set(['server/discover']);
// Notifications of the stateless protocol the SDK's schemas do not
// describe (the Go SDK acknowledges a subscription with one); they are
// checked only as JSON-RPC notifications.
const statelessNotifications = new Set(['notifications/subscriptions/acknowledged']);

test('the Go e2e suite wire transcripts follow the MCP schema', (t) => {
  if (!dir) {
    t.skip('MCP_SECURE_TRANSCRIPTS is not set: run `make test` to record transcripts');
    return;
  }
  // make test names the directory: then a missing one is a failure (the Go
  // suite recorded nothing), never a skip.
  assert.ok(existsSync(dir), `MCP_SECURE_TRANSCRIPTS names ${dir}, which does not exist: the Go e2e suite recorded no transcripts`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.log'));
  assert.ok(files.length >= 10, `only ${files.length} transcripts in ${dir}`);
  let checked = 0;
  const failures = [];
  for (const file of files) {
    const checker = new SchemaCheckedTransport(null);
    const lines = readFileSync(path.join(dir, file), 'utf8')
      .split('\n')
      .map((line) => /^(read|write): (.*)$/.exec(line))
      .filter(Boolean)
      .map(([, kind, json]) => ({ kind, message: JSON.parse(json) }));
    // A response can be logged before the request that caused it (the
    // transcript logs a write once it has completed), so requests are
    // collected first; request ids are unique within a session.
    for (const { kind, message } of lines) {
      if (kind === 'write' && 'method' in message && 'id' in message) {
        checker.pending.set(message.id, statelessOnly.has(message.method) ? null : message.method);
      }
    }
    for (const { kind, message } of lines) {
      if (kind !== 'read') continue;
      if ('id' in message && !('method' in message) && checker.pending.get(message.id) === null) {
        checker.pending.delete(message.id);
        continue; // a stateless-protocol result the SDK schema does not cover
      }
      if (statelessNotifications.has(message.method)) {
        if (message.jsonrpc !== '2.0' || 'id' in message || typeof message.params !== 'object') {
          failures.push(`${file}: malformed notification: ${JSON.stringify(message)}`);
        }
        continue;
      }
      checker.check(message);
    }
    checked += checker.checked;
    for (const v of checker.violations) failures.push(`${file}: ${v}`);
  }
  assert.ok(checked >= 50, `only ${checked} server messages checked`);
  assert.deepEqual(failures, []);
  t.diagnostic(`${checked} server messages in ${files.length} transcripts checked`);
});
