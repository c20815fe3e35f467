// tools/crosscheck.mjs, driven the way the Go test suite drives it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../index.js';

const tool = fileURLToPath(new URL('../tools/crosscheck.mjs', import.meta.url));
const secret = readFileSync(fileURLToPath(new URL('../../../testdata/rfc9421/keys/test-shared-secret.b64', import.meta.url)), 'utf8');

function run(inputs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tool], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`exit ${code}: ${err}`));
      else resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    });
    child.stdin.end(inputs.map((i) => (typeof i === 'string' ? i : JSON.stringify(i))).join('\n') + '\n');
  });
}

const request = {
  method: 'POST',
  url: 'https://api.example.com/v1/orders?customer=42&expand=items',
  headers: [['Content-Type', 'application/json'], ['X-Note', 'café']],
  body_b64: Buffer.from('{"customer":42}').toString('base64'),
};

test('sign, then verify what was signed; refusals carry reasons; one line out per line in', async () => {
  const ed = await generateKeyPair('ed25519');
  const [hmac, edOut] = await run([
    { op: 'sign', request, keyId: 'sk_test_abc', alg: 'hmac-sha256', key: secret, created: 1700000000, nonce: 'q3v0b0m5c2g3d2x1ZmZ4cA' },
    { op: 'sign', request, keyId: 'pk_ed', alg: 'ed25519', key: ed.privateKey, created: 1700000000, nonce: 'n2' },
  ]);
  assert.deepEqual(hmac.headers.map(([n]) => n), ['Content-Digest', 'Signature-Input', 'Signature']);
  assert.equal(hmac.headers[1][1], 'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="sk_test_abc";alg="hmac-sha256";nonce="q3v0b0m5c2g3d2x1ZmZ4cA"');
  assert.match(hmac.base, /^"@method": POST\n"@authority": api\.example\.com\n/);

  const signedReq = (out, extra = {}) => ({ ...request, ...extra, headers: [...request.headers, ...out.headers] });
  const keys = { sk_test_abc: { alg: 'hmac-sha256', key: secret }, pk_ed: { alg: 'ed25519', key: ed.publicKey } };
  const results = await run([
    { op: 'verify', request: signedReq(hmac), keys, now: 1700000010 },
    { op: 'verify', request: signedReq(edOut), keys, now: 1700000010 },
    { op: 'verify', request: signedReq(hmac, { method: 'PUT' }), keys, now: 1700000010 },
    { op: 'verify', request: signedReq(hmac, { body_b64: Buffer.from('{"customer":43}').toString('base64') }), keys, now: 1700000010 },
    { op: 'verify', request: signedReq(hmac), keys, now: 1700001000 },
    { op: 'verify', request: signedReq(hmac), keys: { sk_test_abc: { alg: 'ed25519', key: ed.publicKey } }, now: 1700000010 },
    { op: 'verify', request: signedReq(hmac), keys: {}, now: 1700000010 },
    { op: 'verify', request: { ...request, headers: [...request.headers, ['Signature-Input', 'sig1=(('], ['Signature', 'sig1=:AA==:']] }, keys, now: 1 },
    { op: 'verify', request, keys, now: 1 },
    'this is not json',
    { op: 'frobnicate' },
    { op: 'verify', request: { method: 'GET' }, keys },
    { op: 'sign', request, keyId: 'k', alg: 'hmac-sha256', key: '!!!' },
  ]);
  assert.equal(results.length, 13);
  assert.deepEqual(results[0], { ok: true });
  assert.deepEqual(results[1], { ok: true });
  const reasons = results.slice(2, 9).map((r) => r.reason);
  assert.deepEqual(reasons, ['bad-signature', 'digest-mismatch', 'expired', 'algorithm-mismatch', 'unknown-key', 'malformed-signature', 'missing-signature']);
  for (const r of results.slice(2, 9)) {
    assert.equal(r.ok, false);
    assert.equal(typeof r.message, 'string');
  }
  assert.match(results[9].error, /JSON/);
  assert.match(results[10].error, /unknown op/);
  assert.equal(results[11].ok, false);
  assert.equal(results[11].reason, 'error');
  assert.match(results[12].error, /base64/);
});

test('non-ASCII field values travel as their UTF-8 octets', async () => {
  const [out] = await run([
    { op: 'sign', request, keyId: 'k', alg: 'hmac-sha256', key: secret, created: 1, nonce: 'n', components: ['x-note'] },
  ]);
  assert.equal(out.base.split('\n')[0], '"x-note": café');
});
