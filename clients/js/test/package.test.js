// What npm publishes: the library, its generated declarations, and no
// tests, tools or benchmarks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the package ships only the library and its types', (t) => {
  if (!existsSync(new URL('../types/index.d.ts', import.meta.url))) {
    return t.skip('no generated types: run npm run build (npm test does)');
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const [pack] = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }));
  const files = pack.files.map((f) => f.path).sort();
  const stray = files.filter((f) => !/^((index|index\.node|node|node-native|server)\.js|lib\/(server\/)?[a-z-]+\.js|types\/(index|index\.node|node|node-native|server|lib\/(server\/)?[a-z-]+)\.d\.ts|package\.json|README\.md)$/.test(f));
  assert.deepEqual(stray, []);
  for (const f of ['index.js', 'index.node.js', 'node-native.js', 'node.js', 'server.js', 'types/index.d.ts', 'types/node.d.ts', 'types/server.d.ts', 'package.json', 'README.md']) assert.ok(files.includes(f), f);
  const libs = files.filter((f) => f.startsWith('lib/'));
  for (const f of libs) assert.ok(files.includes(`types/${f.replace(/\.js$/, '.d.ts')}`), `declarations of ${f}`);

  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.exports['.'].types, './types/index.d.ts');
  // Node.js resolves "." to the same API with node:crypto installed; every
  // other runtime (and a bundler for browsers) to the portable index.js.
  assert.deepEqual(Object.keys(pkg.exports['.']), ['types', 'node', 'default']);
  assert.equal(pkg.exports['.'].node, './index.node.js');
  assert.equal(pkg.exports['.'].default, './index.js');
  assert.equal(pkg.exports['./node'].default, './node.js');
  assert.equal(pkg.exports['./server'].default, './server.js');
  assert.equal(pkg.exports['./server'].types, './types/server.d.ts');
  // The portable entry point's declarations need no Node.js types.
  for (const f of files.filter((x) => x.startsWith('types/') && x !== 'types/node.d.ts' && x !== 'types/server.d.ts' && !x.startsWith('types/lib/server/'))) {
    const text = readFileSync(new URL(`../${f}`, import.meta.url), 'utf8');
    assert.doesNotMatch(text, /from ['"]node:|import\(['"]node:|\bNodeJS\b|\bBuffer\b|reference types="node"/, f);
  }
  assert.ok(pkg.license && pkg.repository && pkg.engines.node, 'license, repository, engines');
  assert.deepEqual(Object.keys(pkg.dependencies || {}), [], 'no runtime dependencies');
});
