// A Node server that lets the real `signet serve` verify its requests
// (keys: verifyApi(…)): the Express middleware calls POST /v1/verify on the
// gateway's admin listener, so the Node service and the gateway share
// keys, revocations, the replay cache and the refusals. (The faults a real
// gateway cannot be made to show on demand — slow, nonsense answers — are
// in server-verify-api.test.js, against a double.)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';

import { createVerifier, verifyApi } from '../server.js';
import { createSignedFetch, generateKeyPair } from '../index.js';
import { listen, raw, rawRequest, reasonOf, signedHeaders } from './helpers/server.js';
import { startSignet } from './helpers/signet-serve.js';

describe('verifyApi against signet serve', () => {
  /** @type {any} */
  let gw;
  let api;
  let upstream;
  let seen;
  let client;
  let verifierKey;
  const outcomes = [];
  let skip = '';
  before(async () => {
    upstream = await listen(http.createServer((req, res) => res.end('upstream')));
    gw = await startSignet({ upstream: upstream.origin });
    if (gw.skip) {
      skip = gw.skip;
      return;
    }
    verifierKey = gw.createKey('--owner', 'orders-service', '--scopes', 'verify');
    client = gw.createKey('--owner', 'acme', '--scopes', 'orders:write');
    const verifier = createVerifier({ keys: verifyApi({ url: gw.adminURL, ...verifierKey, timeout: 10000 }), onOutcome: (req, o) => outcomes.push(o) });
    const app = express();
    app.use('/v1', verifier.middleware, express.json(), verifier.requireScopes('orders:write'), (req, res) => {
      seen = { body: req.body, signet: req.signet };
      res.json({ ok: true });
    });
    api = await listen(http.createServer(app));
  });
  after(async () => {
    await api?.close();
    await gw?.stop?.();
    await upstream?.close();
  });
  const signed = (target, o = {}) => signedHeaders(api.origin, target, { keyId: client.keyId, key: client.key, ...o });

  test('the gateway verifies, the Node server checks the body it reads', async (t) => {
    if (skip) return t.skip(skip);
    const body = '{"sku":"A-1"}';
    const h = await signed('/v1/orders?customer=42', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
    const res = await fetch(`${api.origin}/v1/orders?customer=42`, { method: 'POST', headers: h, body });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(seen.body, { sku: 'A-1' });
    assert.equal(seen.signet.keyId, client.keyId);
    assert.equal(seen.signet.owner, 'acme');
    assert.deepEqual([...seen.signet.scopes], ['orders:write']);

    // The body the gateway never saw is held to the digest it named.
    const h2 = await signed('/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body: '{"qty":1}' });
    const bad = await fetch(`${api.origin}/v1/orders`, { method: 'POST', headers: h2, body: '{"qty":9}' });
    assert.equal(bad.status, 401);
    assert.equal(reasonOf(await bad.text()), 'digest-mismatch');
  });

  test('refusals are the gateway\'s, reason for reason', async (t) => {
    if (skip) return t.skip(skip);
    const cases = [
      ['missing-signature', 401, async () => []],
      ['unknown-key', 401, () => signed('/v1/x', { keyId: 'sk_nobody' })],
      ['expired', 401, () => signed('/v1/x', { created: Math.floor(Date.now() / 1000) - 3600 })],
      ['not-yet-valid', 401, () => signed('/v1/x', { created: Math.floor(Date.now() / 1000) + 3600 })],
      ['missing-component', 401, () => signed('/v1/x', { components: ['@method'] })],
      ['bad-signature', 401, async () => (await signed('/v1/x')).map(([n, v]) => [n, n === 'Signature' ? v.replace(/:[A-Za-z0-9]/, ':A') : v])],
    ];
    for (const [reason, status, headers] of cases) {
      const r = await raw(api.port, rawRequest('GET', '/v1/x', `127.0.0.1:${api.port}`, await headers()));
      assert.equal(r.status, status, `${reason}: ${r.body}`);
      assert.equal(reasonOf(r.body), reason);
      if (status === 401) assert.match(r.headers['accept-signature'], /^sig1=\("@method" "@authority" "@path"/);
    }
    // The route's scopes are the Node app's: orders:write holds; a key
    // without it passes the gateway and is stopped by requireScopes.
    const reader = gw.createKey('--owner', 'acme', '--scopes', 'orders:read');
    const r = await raw(api.port, rawRequest('GET', '/v1/x', `127.0.0.1:${api.port}`, await signed('/v1/x', reader)));
    assert.equal(r.status, 403);
    assert.equal(reasonOf(r.body), 'insufficient-scope');
  });

  test('one replay cache and one revocation for the gateway and the Node server', async (t) => {
    if (skip) return t.skip(skip);
    const h = await signed('/v1/orders/1');
    const req = rawRequest('GET', '/v1/orders/1', `127.0.0.1:${api.port}`, h);
    assert.equal((await raw(api.port, req)).status, 200);
    const again = await raw(api.port, req);
    assert.equal(again.status, 401);
    assert.equal(reasonOf(again.body), 'replayed');
    assert.equal(outcomes.at(-1).keyId, client.keyId);

    // A key made in the browser's way (Ed25519, registered by its public
    // key through the admin API) works at once and stops at once.
    const pair = await generateKeyPair('ed25519');
    const made = await gw.admin('POST', '/v1/keys', { owner: 'acme', alg: 'ed25519', public_key: pair.publicKey, scopes: ['orders:write'] });
    const ed = { keyId: made.key.id, key: pair.privateKey, alg: 'ed25519' };
    const f = createSignedFetch(ed);
    assert.equal((await f(`${api.origin}/v1/orders/2`)).status, 200);
    await gw.admin('POST', `/v1/keys/${ed.keyId}/revoke`);
    const res = await f(`${api.origin}/v1/orders/3`);
    assert.equal(res.status, 401);
    assert.equal(reasonOf(await res.text()), 'key-revoked');
  });

  test('a key over its rate is refused as the gateway refuses it, with the RateLimit fields', async (t) => {
    if (skip) return t.skip(skip);
    const limited = gw.createKey('--owner', 'acme', '--scopes', 'orders:write', '--rate', '1/h', '--burst', '1');
    const first = await raw(api.port, rawRequest('GET', '/v1/orders/9', `127.0.0.1:${api.port}`, await signed('/v1/orders/9', limited)));
    assert.equal(first.status, 200, first.body);
    const r = await raw(api.port, rawRequest('GET', '/v1/orders/9', `127.0.0.1:${api.port}`, await signed('/v1/orders/9', limited)));
    assert.equal(r.status, 429, r.body);
    assert.equal(reasonOf(r.body), 'rate-limited');
    assert.match(r.headers['retry-after'] || '', /^\d+$/);
    assert.match(r.headers['ratelimit'] || '', /r=0/);
    assert.match(r.headers['ratelimit-policy'] || '', /q=1/);
  });

  test('a server key without the verify scope gets nothing verified: 503', async (t) => {
    if (skip) return t.skip(skip);
    const plain = gw.createKey('--owner', 'other-service', '--scopes', 'orders:read');
    const verifier = createVerifier({ keys: verifyApi({ url: gw.adminURL, ...plain }) });
    const l = await listen(http.createServer(verifier.handler((req, res) => res.end('ok'))));
    try {
      const res = await fetch(`${l.origin}/y`, { headers: await signedHeaders(l.origin, '/y', client) });
      assert.equal(res.status, 503);
      assert.equal(reasonOf(await res.text()), 'unavailable');
    } finally {
      await l.close();
    }
  });
});
