// Live test: the package signs, the real `signet serve` gateway verifies.
// The test builds the signet binary from this repository (Go is needed;
// without it the test skips, or fails when CI=true), makes keys in a fresh
// SQLite key store, starts the gateway on 127.0.0.1 in front of a small
// upstream, and stops everything at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync } from 'node:crypto';

import { createSignedFetch, readProblem, sign } from '../index.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let dir, signet, gateway, upstream, gatewayURL;
let hmacKey, edKey;
const seen = [];
let skip = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitForPort(port, proc) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`signet serve exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('signet serve did not start listening');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'signet-js-live-'));
  signet = join(dir, 'signet');
  try {
    execFileSync('go', ['build', '-o', signet, './cmd/signet'], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (process.env.CI === 'true') throw new Error(`cannot build signet (CI=true requires it): ${err.message}`);
    skip = `cannot build signet with go: ${err.message}`;
    return;
  }
  const db = join(dir, 'keys.db');
  const keys = (...args) => JSON.parse(execFileSync(signet, ['keys', 'create', '--db', db, '--json', ...args], { encoding: 'utf8' }));
  const h = keys('--owner', 'node-client', '--scopes', 'orders:read');
  hmacKey = { keyId: h.key.id, key: h.secret };
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'ed.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const e = keys('--owner', 'node-ed', '--alg', 'ed25519', '--public-key', join(dir, 'ed.pub'));
  edKey = { keyId: e.key.id, key: privateKey.export({ type: 'pkcs8', format: 'pem' }), alg: 'ed25519' };

  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url === '/v1/own-401') {
        // The API's own refusal, dressed as the gateway's.
        res.writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': 'Signature realm="api"' });
        res.end(JSON.stringify({ type: 'https://signet.dev/problems/expired', title: 'Signature expired', status: 401 }));
        return;
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ owner: req.headers['x-signet-owner'] }));
    });
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const port = await freePort();
  const adminPort = await freePort();
  gateway = spawn(signet, ['serve', '--upstream', `http://127.0.0.1:${upstream.address().port}`,
    '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--db', db, '--log-level', 'warn', '--drain', '0'],
  { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, gateway);
  gatewayURL = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.on('exit', r));
  }
  if (upstream) await new Promise((r) => upstream.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('hmac-sha256 and ed25519 requests pass the gateway with their identity', async (t) => {
  if (skip) return t.skip(skip);
  for (const k of [hmacKey, edKey]) {
    const f = createSignedFetch(k);
    const res = await f(`${gatewayURL}/v1/orders?customer=42&expand=items`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: 'B-1', qty: 2 }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const last = seen.at(-1);
    assert.equal(last.headers['x-signet-key-id'], k.keyId);
    assert.equal(last.body, '{"sku":"B-1","qty":2}');
    assert.equal(last.url, '/v1/orders?customer=42&expand=items');
    const get = await f(`${gatewayURL}/v1/orders/7`);
    assert.equal(get.status, 200);
  }
});

test('tampered, replayed and unsigned requests are refused with their reason', async (t) => {
  if (skip) return t.skip(skip);
  const url = `${gatewayURL}/v1/orders`;
  const body = '{"qty":1}';
  const signNew = () => sign({ method: 'POST', url, headers: [['content-type', 'application/json']], body }, hmacKey);
  let signed = await signNew();
  const send = (b) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...Object.fromEntries(Object.entries(signed.headers)) }, body: b });
  const reason = async (res) => (await readProblem(res))?.reason;

  let res = await send('{"qty":9}');
  assert.equal(res.status, 401);
  assert.equal(await reason(res), 'digest-mismatch');
  // The gateway spends a nonce once the signature verifies, before it reads
  // the body: the signature of a tampered request is used up.
  res = await send(body);
  assert.equal(res.status, 401);
  assert.equal(await reason(res), 'replayed');
  signed = await signNew();
  res = await send(body);
  assert.equal(res.status, 200);
  res = await send(body);
  assert.equal(res.status, 401);
  assert.equal(await reason(res), 'replayed');
  res = await fetch(url);
  assert.equal(res.status, 401);
  assert.equal(await reason(res), 'missing-signature');
  assert.ok(res.headers.get('accept-signature').startsWith('sig1=('));
  assert.ok(res.headers.get('date'));
});

test('a client whose clock is 10 minutes slow corrects it from Date and retries once', async (t) => {
  if (skip) return t.skip(skip);
  const f = createSignedFetch({ ...hmacKey, clock: () => Date.now() - 600_000 });
  const res = await f(`${gatewayURL}/v1/orders/8`);
  assert.equal(res.status, 200);
  assert.ok(Math.abs(f.clockOffset(gatewayURL) - 600) < 5, `clock offset ${f.clockOffset(gatewayURL)}`);
});

test('the API behind the gateway answering its own 401 "expired" gets the POST once', async (t) => {
  if (skip) return t.skip(skip);
  const f = createSignedFetch(hmacKey);
  const before = seen.filter((r) => r.url === '/v1/own-401').length;
  const res = await f(`${gatewayURL}/v1/own-401`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"qty":1}' });
  assert.equal(res.status, 401);
  assert.equal((await readProblem(res)).reason, 'expired');
  assert.equal(seen.filter((r) => r.url === '/v1/own-401' && r.method === 'POST').length - before, 1);
  assert.equal(f.clockOffset(gatewayURL), 0);
});
