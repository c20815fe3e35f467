// The README's server examples, run as they are written: each block that
// follows an `<!-- example: NAME -->` marker is written to a module in the
// package (so that '@signet/client/server' resolves to this package) and
// run with PORT=0; the test talks to it over loopback.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { sign } from '../index.js';
import { SECRET } from './helpers/server.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const dir = new URL('./.readme/', import.meta.url);
mkdirSync(dir, { recursive: true });
after(() => rmSync(dir, { recursive: true, force: true }));

/** The code block after the marker of name. */
function example(name) {
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`js\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(readme);
  assert.ok(m, `README has no example ${name}`);
  return m[1];
}

const children = new Set();
after(() => { for (const c of children) c.kill(); });

/**
 * Runs an example; resolves to its process and the first line it prints
 * on stdout (for a server, the URL it listens on).
 */
function run(name, env = {}) {
  const file = fileURLToPath(new URL(`${name}.mjs`, dir));
  writeFileSync(file, example(name));
  const proc = spawn(process.execPath, [file], { env: { ...process.env, PORT: '0', SIGNET_SECRET: SECRET, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const firstLine = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.on('exit', (code) => reject(new Error(`${name} exited with ${code} before printing: ${err}`)));
  });
  firstLine.catch(() => {});
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve({ code, out, err })));
  return { proc, firstLine, exited, stop: () => { proc.kill(); children.delete(proc); } };
}

const listening = (line) => {
  const m = /^listening on (\w+:\/\/localhost:\d+)$/.exec(line);
  assert.ok(m, line);
  return m[1].replace('localhost', '127.0.0.1');
};

async function signedFetch(url, init = {}) {
  const headers = [...Object.entries(init.headers || {})];
  const signed = await sign({ method: init.method || 'GET', url, headers, body: init.body }, { keyId: 'sk_live_1', key: SECRET });
  return fetch(url, { ...init, headers: [...headers, ...Object.entries(signed.headers)] });
}

test('README: the Express example', async () => {
  const ex = run('express-server');
  try {
    const origin = listening(await ex.firstLine);
    let res = await signedFetch(`${origin}/v1/orders/7`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: '7', owner: 'acme' });
    res = await signedFetch(`${origin}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"A-1"}' });
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { order: { sku: 'A-1' }, by: 'sk_live_1' });
    res = await fetch(`${origin}/v1/orders/7`);
    assert.equal(res.status, 401);
  } finally {
    ex.stop();
  }
});

test('README: the Fastify example', async () => {
  const ex = run('fastify-server');
  try {
    const origin = listening(await ex.firstLine);
    let res = await signedFetch(`${origin}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"B-2"}' });
    assert.equal(res.status, 201, await res.clone().text());
    assert.deepEqual(await res.json(), { order: { sku: 'B-2' }, by: 'sk_live_1' });
    res = await fetch(`${origin}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 401);
    res = await fetch(`${origin}/healthz`);
    assert.equal(res.status, 200);
  } finally {
    ex.stop();
  }
});

test('README: the ws server and the ws client that signs its upgrade', async () => {
  const server = run('ws-server');
  try {
    const url = `${listening(await server.firstLine)}/v1/stream`;
    const client = run('ws-client', { STREAM_URL: url });
    const { code, out, err } = await client.exited;
    assert.equal(code, 0, err);
    assert.equal(out, 'hello acme\n');
    const unsigned = run('ws-client', { STREAM_URL: url, SIGNET_SECRET: 'd3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA==' });
    const r = await unsigned.exited;
    assert.equal(r.code, 1);
    assert.match(r.err, /refused: 401/);
  } finally {
    server.stop();
  }
});
