// The portable entry point (@signet/client) runs wherever Web Crypto does:
// its module graph imports no node: module and uses no Node.js global. The
// browser test proves it in Chromium; this test keeps it true on every run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// What only Node.js has. (Strings and comments are stripped before the
// search.)
const NODE_ONLY = /\b(Buffer|process|require|module\.exports|__dirname|__filename|setImmediate|global)\b/;

function graph(entry) {
  const seen = new Map();
  const visit = (url) => {
    if (seen.has(url.href)) return;
    const source = readFileSync(fileURLToPath(url), 'utf8');
    seen.set(url.href, source);
    for (const m of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)) {
      const spec = m[1] || m[2];
      if (spec.startsWith('.')) visit(new URL(spec, url));
      else seen.set(spec, null);
    }
  };
  visit(new URL(entry, import.meta.url));
  return seen;
}

test('@signet/client imports only its own modules and uses no Node.js global', () => {
  const modules = graph('../index.js');
  assert.ok(modules.size >= 10, `${modules.size} modules`);
  for (const [name, source] of modules) {
    assert.notEqual(source, null, `imports ${name}`);
    const code = source
      .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, "''")
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    const hit = NODE_ONLY.exec(code);
    assert.equal(hit, null, `${name} uses ${hit && hit[0]}`);
  }
  // The registration point of a native provider is part of the core; the
  // Node.js provider is not.
  const files = [...modules.keys()].map((u) => u.replace(/^.*\/clients\/js\//, ''));
  assert.ok(files.includes('lib/native.js'));
  assert.ok(!files.some((f) => f.includes('node-native')), files.join(' '));
});

test('on Node.js, @signet/client resolves to index.node.js, which installs node:crypto; the core alone installs nothing', async () => {
  const { native } = await import('../lib/native.js');
  await import('../index.js');
  assert.equal(native(), undefined);
  assert.match(import.meta.resolve('@signet/client'), /\/index\.node\.js$/);
  const viaName = await import('@signet/client');
  const portable = await import('../index.js');
  assert.equal(viaName.sign, portable.sign, 'the same module instances');
  const { nodeCrypto } = await import('../node-native.js');
  assert.equal(native(), nodeCrypto);
  const external = [...graph('../index.node.js')].filter(([, s]) => s === null).map(([n]) => n).sort();
  assert.deepEqual(external, ['node:crypto']);
});

test('@signet/client/node adds node: modules only in its own file', () => {
  const modules = graph('../node.js');
  const external = [...modules].filter(([, s]) => s === null).map(([n]) => n).sort();
  assert.deepEqual(external, ['node:crypto', 'node:fs/promises']);
});

test('@signet/client/server adds only node: modules, and no runtime dependency', () => {
  const modules = graph('../server.js');
  const external = [...modules].filter(([, s]) => s === null).map(([n]) => n).sort();
  assert.deepEqual(external, ['node:crypto', 'node:fs', 'node:fs/promises', 'node:perf_hooks', 'node:stream']);
});
