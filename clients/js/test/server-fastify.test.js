// The verifier as a Fastify plugin, on real Fastify 5 and
// @fastify/websocket over loopback: registered in a prefixed context, the
// content-type parsers after it, routes outside it left alone, and signed
// WebSocket upgrades.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import WebSocket from 'ws';

import { MemoryNonceStore, createVerifier, sign } from '../server.js';
import { KEY_ID, SECRET, raw, rawRequest, reasonOf, signedHeaders } from './helpers/server.js';

describe('Fastify', () => {
  let app;
  let origin;
  let port;
  const verifier = createVerifier({
    keys: new Map([[KEY_ID, { key: SECRET, owner: 'acme', scopes: ['orders:write'] }], ['sk_ro', { key: SECRET, owner: 'ro', scopes: [] }]]),
    nonces: new MemoryNonceStore(),
    maxBodyBytes: 32 << 10,
  });

  before(async () => {
    // The proxy in front strips /api: the client signed /api/v1/…
    app = Fastify({ rewriteUrl: (req) => (req.url.startsWith('/api/') ? req.url.slice(4) : req.url) });
    await app.register(fastifyWebsocket);
    app.get('/public', async () => ({ public: true }));
    await app.register(async (v1) => {
      v1.register(verifier.fastify);
      v1.addContentTypeParser('text/csv', { parseAs: 'string' }, (req, body, done) => done(null, body.split(',')));
      v1.post('/orders', { preHandler: verifier.requireScopes('orders:write') }, async (req) => ({
        body: req.body, keyId: req.signet.keyId, owner: req.signet.owner, raw: req.rawBody && req.rawBody.toString(), url: req.url,
      }));
      v1.get('/orders/:id', async (req) => ({ id: req.params.id, owner: req.signet.owner }));
      v1.get('/stream', { websocket: true }, (socket, req) => {
        socket.send(`hello ${req.signet.owner}`);
        socket.close();
      });
    }, { prefix: '/v1' });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = app.server.address().port;
    origin = `http://127.0.0.1:${port}`;
  });
  after(() => app.close());

  test('a signed request in the prefixed context passes; the JSON parser sees the body', async () => {
    const body = '{"sku":"A-1","qty":2}';
    const h = await signedHeaders(origin, '/v1/orders?customer=42', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
    const res = await fetch(`${origin}/v1/orders?customer=42`, { method: 'POST', headers: h, body });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { body: { sku: 'A-1', qty: 2 }, keyId: KEY_ID, owner: 'acme', raw: body, url: '/v1/orders?customer=42' });
  });

  test('a custom content-type parser sees the body', async () => {
    const h = await signedHeaders(origin, '/v1/orders', { method: 'POST', headers: [['Content-Type', 'text/csv']], body: 'a,b,c' });
    const res = await fetch(`${origin}/v1/orders`, { method: 'POST', headers: h, body: 'a,b,c' });
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).body, ['a', 'b', 'c']);
  });

  test('the original URL is verified, not the rewritten one', async () => {
    const h = await signedHeaders(origin, '/api/v1/orders/9');
    const res = await fetch(`${origin}/api/v1/orders/9`, { headers: h });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { id: '9', owner: 'acme' });
    // Signed as the rewritten URL, sent as the original: refused.
    const h2 = await signedHeaders(origin, '/v1/orders/9');
    const res2 = await fetch(`${origin}/api/v1/orders/9`, { headers: h2 });
    assert.equal(reasonOf(await res2.text()), 'bad-signature');
  });

  test('refusals: missing signature, digest mismatch, scope, size; routes outside the context are left alone', async () => {
    let res = await fetch(`${origin}/v1/orders/1`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal(res.headers.get('www-authenticate'), 'Signature realm="signet"');
    assert.equal(res.headers.get('accept-signature'), 'sig1=("@method" "@authority" "@path")');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.ok(res.headers.get('date'));
    assert.equal(reasonOf(await res.text()), 'missing-signature');

    const body = '{"qty":1}';
    const h = await signedHeaders(origin, '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
    res = await fetch(`${origin}/v1/orders`, { method: 'POST', headers: h, body: '{"qty":2}' });
    assert.equal(res.status, 401);
    assert.equal(reasonOf(await res.text()), 'digest-mismatch');

    const ro = await signedHeaders(origin, '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body, keyId: 'sk_ro' });
    res = await fetch(`${origin}/v1/orders`, { method: 'POST', headers: ro, body });
    assert.equal(res.status, 403);
    assert.equal(reasonOf(await res.text()), 'insufficient-scope');

    const big = JSON.stringify({ x: 'y'.repeat(40 << 10) });
    const bh = await signedHeaders(origin, '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body: big });
    const r = await raw(port, rawRequest('POST', '/v1/orders', `127.0.0.1:${port}`, [...bh, ['Content-Length', String(big.length)]], ''));
    assert.equal(r.status, 413);
    assert.equal(reasonOf(r.body), 'body-too-large');

    const f = await raw(port, rawRequest('GET', '/v1/orders/1#/../../public', `127.0.0.1:${port}`, await signedHeaders(origin, '/v1/orders/1')));
    assert.equal(f.status, 400);
    assert.equal(reasonOf(f.body), 'invalid-target');

    res = await fetch(`${origin}/public`);
    assert.equal(res.status, 200);
  });

  test('a WebSocket route accepts only signed upgrades', async () => {
    const url = `ws://127.0.0.1:${port}/v1/stream`;
    const { headers } = await sign({ method: 'GET', url }, { keyId: KEY_ID, key: SECRET });
    const ws = new WebSocket(url, { headers });
    const [msg] = await Promise.all([
      new Promise((resolve, reject) => { ws.on('message', (m) => resolve(String(m))); ws.on('error', reject); }),
    ]);
    assert.equal(msg, 'hello acme');

    const refused = await new Promise((resolve) => {
      const bad = new WebSocket(url);
      bad.on('unexpected-response', (req, res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve({ status: res.statusCode, body: b }));
      });
      bad.on('error', () => {});
    });
    assert.equal(refused.status, 401);
    assert.equal(reasonOf(refused.body), 'missing-signature');
  });
});
