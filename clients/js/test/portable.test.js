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
