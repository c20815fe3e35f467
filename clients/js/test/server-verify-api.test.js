// A Node server that lets a Signet gateway verify (keys: verifyApi(…)),
// against a double of the gateway's POST /v1/verify that can be made slow,
// down or nonsensical on demand, and records the calls it gets.
// server-verify-api-live.test.js runs the same middleware against the
// real signet serve.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';

import { createVerifier, verifyApi } from '../server.js';
import { KEY_ID, SECRET, listen, raw, rawRequest, reasonOf, signedHeaders } from './helpers/server.js';
import { startVerifyApi } from './helpers/verify-api-double.js';

const SERVER_SECRET = 'c2VydmVyLXNlY3JldC1zZXJ2ZXItc2VjcmV0LXNlcnZlcg==';

describe('verifyApi', () => {
  let gw;
  let api;
  let seen;
  const outcomes = [];
  before(async () => {
    gw = await startVerifyApi({
      callers: { sk_server: { key: SERVER_SECRET, scopes: ['verify'] }, sk_plain: { key: SERVER_SECRET, scopes: [] } },
      keys: { [KEY_ID]: { key: SECRET, owner: 'acme', scopes: ['orders:write'] } },
    });
    const verifier = createVerifier({ keys: verifyApi({ url: gw.origin, keyId: 'sk_server', key: SERVER_SECRET, timeout: 2000 }), onOutcome: (req, o) => outcomes.push(o) });
    const app = express();
    app.use('/v1', verifier.middleware, express.json(), verifier.requireScopes('orders:write'), (req, res) => {
      seen = { body: req.body, signet: req.signet };
      res.json({ ok: true });
    });
    api = await listen(http.createServer(app));
  });
  after(async () => {
    await api.close();
    await gw.close();
  });

  test('the gateway verifies the signature; the server checks the body it reads', async () => {
    const body = '{"sku":"A-1"}';
    const h = await signedHeaders(api.origin, '/v1/orders?customer=42', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
    const res = await fetch(`${api.origin}/v1/orders?customer=42`, { method: 'POST', headers: h, body });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(seen.body, { sku: 'A-1' });
    assert.equal(seen.signet.keyId, KEY_ID);
    assert.equal(seen.signet.owner, 'acme');
    assert.deepEqual([...seen.signet.scopes], ['orders:write']);

    // What the server sent: the request as received, without its body.
    const call = gw.calls.at(-1);
    assert.equal(call.method, 'POST');
    assert.equal(call.target, '/v1/orders?customer=42');
    assert.equal(call.authority, `127.0.0.1:${api.port}`);
    assert.equal(call.scheme, 'http');
    assert.equal(call.has_content, true);
    assert.deepEqual(Object.keys(call).sort(), ['authority', 'has_content', 'headers', 'method', 'scheme', 'target']);
    const names = call.headers.map(([n]) => n.toLowerCase());
    for (const n of ['host', 'content-type', 'content-digest', 'signature-input', 'signature']) assert.ok(names.includes(n), n);
  });

  test('field values go as Latin-1 strings, one character per octet', async () => {
    const value = Buffer.from('café', 'utf8').toString('latin1');
    const h = await signedHeaders(api.origin, '/v1/x', { headers: [['X-Note', value]], components: ['@method', '@authority', '@path', 'x-note'] });
    const r = await raw(api.port, Buffer.from(rawRequest('GET', '/v1/x', `127.0.0.1:${api.port}`, h), 'latin1'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(gw.calls.at(-1).headers.find(([n]) => n === 'X-Note'), ['X-Note', 'caf\u00c3\u00a9']);
  });

  test('a body that does not match the digest the gateway names is refused here', async () => {
    const h = await signedHeaders(api.origin, '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body: '{"qty":1}' });
    const res = await fetch(`${api.origin}/v1/orders`, { method: 'POST', headers: h, body: '{"qty":9}' });
    assert.equal(res.status, 401);
    assert.equal(reasonOf(await res.text()), 'digest-mismatch');
  });

  test('the gateway\'s refusals are answered as its own, with its Accept-Signature', async () => {
    let res = await fetch(`${api.origin}/v1/orders`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('accept-signature'), 'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");tag="from-the-gateway"');
    assert.equal(res.headers.get('www-authenticate'), 'Signature realm="signet"');
    assert.equal(reasonOf(await res.text()), 'missing-signature');

    const h = await signedHeaders(api.origin, '/v1/orders/1');
    res = await fetch(`${api.origin}/v1/orders/1`, { headers: h });
    assert.equal(res.status, 200);
    res = await fetch(`${api.origin}/v1/orders/1`, { headers: h });
    assert.equal(res.status, 401);
    const p = JSON.parse(await res.text());
    assert.equal(p.type, 'https://signet.dev/problems/replayed');
    assert.equal(p.signature, 'sig1');
    assert.equal(outcomes.at(-1).keyId, KEY_ID);
  });

  test('a gateway that is down, slow, or answers nonsense: 503, fail closed', async () => {
    for (const mode of ['down', 'slow', 'garbage']) {
      gw.state.mode = mode;
      try {
        const res = await fetch(`${api.origin}/v1/orders/2`, { headers: await signedHeaders(api.origin, '/v1/orders/2') });
        assert.equal(res.status, 503, mode);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.equal(reasonOf(await res.text()), 'unavailable');
        assert.ok(outcomes.at(-1).error instanceof Error, mode);
      } finally {
        gw.state.mode = 'ok';
      }
    }
  });

  test('a server key without the verify scope gets nothing verified', async () => {
    const verifier = createVerifier({ keys: verifyApi({ url: gw.origin, keyId: 'sk_plain', key: SERVER_SECRET }) });
    const l = await listen(http.createServer(verifier.handler((req, res) => res.end('ok'))));
    try {
      const res = await fetch(`${l.origin}/y`, { headers: await signedHeaders(l.origin, '/y') });
      assert.equal(res.status, 503);
    } finally {
      await l.close();
    }
  });

  test('options: the gateway keeps the nonces and the policy', () => {
    const keys = verifyApi({ url: 'http://127.0.0.1:9090', keyId: 'k', key: SERVER_SECRET });
    assert.equal(keys.endpoint.href, 'http://127.0.0.1:9090/v1/verify');
    assert.equal(verifyApi({ url: 'http://gw/admin', keyId: 'k', key: SERVER_SECRET }).endpoint.href, 'http://gw/admin/v1/verify');
    assert.throws(() => createVerifier({ keys, nonces: false }), /gateway applies its own policy/);
    assert.throws(() => verifyApi({ url: 'ftp://x', keyId: 'k', key: SERVER_SECRET }), /http: or https:/);
  });
});
