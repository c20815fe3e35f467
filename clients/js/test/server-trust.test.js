// trustGateway: a Node.js service behind a Signet gateway that signs what
// it forwards. Here a small stand-in signs as the gateway does (label
// signet, tag signet-gateway, Ed25519, the same components) and publishes
// its keys as a JWK set; gateway/upstreamsign_node_test.go runs the real
// Go gateway in front of this module.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { WebSocket, WebSocketServer } from 'ws';
import Fastify from 'fastify';

import { generateKeyPair, jwkThumbprint, sign, trustGateway } from '../server.js';
import { listen, reasonOf } from './helpers/server.js';

/** A gateway key: its private PEM, public JWK and keyid. */
async function gatewayKey() {
  const { privateKey, publicKey } = await generateKeyPair('ed25519');
  const jwk = /** @type {any} */ (createPublicKey(publicKey).export({ format: 'jwk' }));
  return { privateKey, jwk, kid: await jwkThumbprint(jwk) };
}

/** @param {Awaited<ReturnType<typeof gatewayKey>>[]} keys */
const jwks = (keys) => JSON.stringify({ keys: keys.map((k) => ({ ...k.jwk, kid: k.kid, use: 'sig', alg: 'EdDSA', nbf: 0 })) });

let n = 0;

/**
 * Signs a request as the gateway does and sends it.
 * @param {string} origin
 * @param {string} target
 * @param {{ key: any, method?: string, body?: string, identity?: boolean, headers?: [string, string][], tamper?: (h: [string, string][]) => [string, string][], targetSent?: string, bodySent?: string }} o
 */
async function viaGateway(origin, target, o) {
  const headers = /** @type {[string, string][]} */ ([...(o.headers || []), ['X-Request-Id', `req-${++n}`]]);
  if (o.identity !== false) headers.push(['X-Signet-Key-Id', 'sk_client'], ['X-Signet-Owner', 'acme'], ['X-Signet-Scopes', 'orders:read,orders:write']);
  const components = ['@method', '@authority', '@path'];
  if (target.includes('?')) components.push('@query');
  if (headers.some(([k]) => k.toLowerCase() === 'content-type')) components.push('content-type');
  if (o.body) components.push('content-digest');
  if (o.identity !== false) components.push('x-signet-key-id', 'x-signet-owner', 'x-signet-scopes');
  components.push('x-request-id');
  const method = o.method || 'GET';
  const { headers: sig } = await sign({ method, url: origin + target, headers, body: o.body }, {
    keyId: o.key.kid, key: o.key.privateKey, alg: 'ed25519', label: 'signet', tag: 'signet-gateway', components,
  });
  let all = [...headers, ...Object.entries(sig)];
  if (o.tamper) all = o.tamper(all);
  const res = await fetch(origin + (o.targetSent || target), { method, headers: all, body: o.bodySent ?? o.body });
  return { status: res.status, text: await res.text() };
}

describe('trustGateway, node:http', () => {
  let keys, jwksServer, upstream, a, b;
  let published;
  before(async () => {
    a = await gatewayKey();
    b = await gatewayKey();
    published = [a];
    jwksServer = await listen(http.createServer((req, res) => {
      res.setHeader('content-type', 'application/jwk-set+json');
      res.end(jwks(published));
    }));
    keys = `${jwksServer.origin}/.well-known/signet-keys`;
    const trust = trustGateway({ jwksUrl: keys, minInterval: 20 });
    upstream = await listen(http.createServer(trust.handler(async (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ signet: req.signet, gateway: req.signetGateway, body: req.rawBody && req.rawBody.toString() }));
    })));
  });
  after(async () => {
    await upstream.close();
    await jwksServer.close();
  });

  test('gateway-signed requests pass with the identity the gateway vouched for', async () => {
    let r = await viaGateway(upstream.origin, '/v1/orders/1?x=1', { key: a });
    assert.equal(r.status, 200, r.text);
    let got = JSON.parse(r.text);
    assert.equal(got.signet.keyId, 'sk_client');
    assert.equal(got.signet.owner, 'acme');
    assert.deepEqual(got.signet.scopes, ['orders:read', 'orders:write']);
    assert.equal(got.gateway.keyId, a.kid);
    assert.equal(got.gateway.public, false);

    r = await viaGateway(upstream.origin, '/v1/orders', { key: a, method: 'POST', body: '{"qty":2}', headers: [['Content-Type', 'application/json']] });
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).body, '{"qty":2}');

    r = await viaGateway(upstream.origin, '/healthz', { key: a, identity: false });
    assert.equal(r.status, 200, r.text);
    got = JSON.parse(r.text);
    assert.equal(got.signet, null);
    assert.equal(got.gateway.public, true);
  });

  test('requests that did not come through the gateway are refused', async () => {
    const other = await gatewayKey();
    const cases = [
      ['forged identity, no signature', async () => {
        const res = await fetch(`${upstream.origin}/v1/orders/1`, { headers: { 'X-Signet-Owner': 'root', 'X-Signet-Scopes': 'admin' } });
        return { status: res.status, text: await res.text() };
      }, 401, 'missing-signature'],
      ['another key', () => viaGateway(upstream.origin, '/v1/orders/1', { key: other }), 401, 'unknown-key'],
      ['an identity field nobody signed', () => viaGateway(upstream.origin, '/v1/orders/1', { key: a, tamper: (h) => [...h, ['X-Signet-Admin', 'true']] }), 401, 'missing-component'],
      ['one with underscores', () => viaGateway(upstream.origin, '/v1/orders/1', { key: a, tamper: (h) => [...h, ['X_Signet_Admin', 'true']] }), 401, 'missing-component'],
      ['owner changed', () => viaGateway(upstream.origin, '/v1/orders/1', { key: a, tamper: (h) => h.map(([k, v]) => [k, k === 'X-Signet-Owner' ? 'root' : v]) }), 401, 'bad-signature'],
      ['path changed', () => viaGateway(upstream.origin, '/v1/orders/1', { key: a, targetSent: '/v1/orders/2' }), 401, 'bad-signature'],
      ['body changed', () => viaGateway(upstream.origin, '/v1/orders', { key: a, method: 'POST', body: '{"qty":2}', bodySent: '{"qty":9}', headers: [['Content-Type', 'application/json']] }), 401, 'digest-mismatch'],
      ['client signature only', async () => {
        const { headers } = await sign({ method: 'GET', url: `${upstream.origin}/v1/orders/1` }, { keyId: a.kid, key: a.privateKey, alg: 'ed25519' });
        const res = await fetch(`${upstream.origin}/v1/orders/1`, { headers });
        return { status: res.status, text: await res.text() };
      }, 401, 'missing-signature'],
    ];
    for (const [name, run, status, reason] of cases) {
      const r = await /** @type {any} */ (run)();
      assert.equal(r.status, status, `${name}: ${r.text}`);
      assert.equal(reasonOf(r.text), reason, name);
    }
  });

  test('a replayed gateway request is refused', async () => {
    const headers = /** @type {[string, string][]} */ ([['X-Request-Id', 'rp']]);
    const { headers: sig } = await sign({ method: 'GET', url: `${upstream.origin}/x`, headers }, {
      keyId: a.kid, key: a.privateKey, alg: 'ed25519', label: 'signet', tag: 'signet-gateway', components: ['@method', '@authority', '@path', 'x-request-id'],
    });
    const all = [...headers, ...Object.entries(sig)];
    assert.equal((await fetch(`${upstream.origin}/x`, { headers: all })).status, 200);
    const res = await fetch(`${upstream.origin}/x`, { headers: all });
    assert.equal(res.status, 401);
    assert.equal(reasonOf(await res.text()), 'replayed');
  });

  test('rotation: a key published after the set was fetched is learnt at first sight', async () => {
    assert.equal((await viaGateway(upstream.origin, '/r', { key: a })).status, 200);
    published = [a, b]; // the successor is published, then signs
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => viaGateway(upstream.origin, `/r/${i}`, { key: i % 2 ? a : b })));
    for (const r of results) assert.equal(r.status, 200, r.text);
    published = [b];
    assert.equal((await viaGateway(upstream.origin, '/r', { key: b })).status, 200);
  });
});

describe('trustGateway, key sources and adapters', () => {
  let key;
  before(async () => {
    key = await gatewayKey();
  });

  test('a JWKS file and pinned keys; a bad file throws at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-trust-'));
    const file = join(dir, 'keys.json');
    writeFileSync(file, jwks([key]));
    for (const opts of [{ jwksFile: file }, { keys: { [key.kid]: key.jwk } }]) {
      const trust = trustGateway(opts);
      const l = await listen(http.createServer(trust.handler((req, res) => res.end(req.signet ? req.signet.owner : '-'))));
      try {
        const r = await viaGateway(l.origin, '/a', { key });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.text, 'acme');
      } finally {
        await l.close();
      }
    }
    writeFileSync(file, '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}');
    assert.throws(() => trustGateway({ jwksFile: file }), /malformed/);
    assert.throws(() => trustGateway({ jwksFile: file, keys: {} }), /one of/);
    assert.throws(() => trustGateway({ jwksUrl: 'http://10.1.2.3:9090/.well-known/signet-keys' }), /plain http/);
    trustGateway({ jwksUrl: 'http://10.1.2.3:9090/.well-known/signet-keys', allowHttp: true });
  });

  test('the gateway cannot be reached: 503, fail closed', async () => {
    const trust = trustGateway({ jwksUrl: 'http://127.0.0.1:9/keys', timeout: 500 });
    const l = await listen(http.createServer(trust.handler((req, res) => res.end('reached'))));
    try {
      const r = await viaGateway(l.origin, '/a', { key });
      assert.equal(r.status, 503, r.text);
      assert.equal(reasonOf(r.text), 'unavailable');
    } finally {
      await l.close();
    }
  });

  test('Express, with requireScopes on what the gateway vouched for', async () => {
    const trust = trustGateway({ keys: { [key.kid]: key.jwk } });
    const app = express();
    app.use(trust.middleware);
    app.get('/orders', trust.requireScopes('orders:read'), (req, res) => res.json({ owner: /** @type {any} */ (req).signet.owner }));
    app.get('/admin', trust.requireScopes('admin'), (req, res) => res.send('admin'));
    const l = await listen(http.createServer(app));
    try {
      let r = await viaGateway(l.origin, '/orders', { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(JSON.parse(r.text), { owner: 'acme' });
      r = await viaGateway(l.origin, '/admin', { key });
      assert.equal(r.status, 403);
      assert.equal(reasonOf(r.text), 'insufficient-scope');
      const res = await fetch(`${l.origin}/orders`, { headers: { 'X-Signet-Scopes': 'orders:read' } });
      assert.equal(res.status, 401);
    } finally {
      await l.close();
    }
  });

  test('Fastify', async () => {
    const trust = trustGateway({ keys: { [key.kid]: key.jwk } });
    const app = Fastify();
    await app.register(trust.fastify);
    app.post('/orders', async (request) => ({ owner: /** @type {any} */ (request).signet.owner, gateway: /** @type {any} */ (request).signetGateway.keyId, body: request.body }));
    app.get('/orders/:id', async (request) => ({ owner: /** @type {any} */ (request).signet.owner, public: /** @type {any} */ (request).signetGateway.public }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const origin = `http://127.0.0.1:${/** @type {any} */ (app.server.address()).port}`;
    try {
      const r = await viaGateway(origin, '/orders', { key, method: 'POST', body: '{"qty":1}', headers: [['Content-Type', 'application/json']] });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(JSON.parse(r.text), { owner: 'acme', gateway: key.kid, body: { qty: 1 } });
      const g = await viaGateway(origin, '/orders/7', { key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(JSON.parse(g.text), { owner: 'acme', public: false });
      const res = await fetch(`${origin}/orders`, { method: 'POST', headers: { 'X-Signet-Owner': 'root', 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 401);
    } finally {
      await app.close();
    }
  });

  test('WebSocket upgrades', async () => {
    const trust = trustGateway({ keys: { [key.kid]: key.jwk } });
    const server = http.createServer((req, res) => res.end('no'));
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws, req) => ws.send(`hello ${/** @type {any} */ (req).signet.owner} via ${/** @type {any} */ (req).signetGateway.keyId === key.kid}`));
    server.on('upgrade', async (req, socket, head) => {
      if (!(await trust.verifyUpgrade(req, socket))) return;
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    const l = await listen(server);
    try {
      const headers = /** @type {[string, string][]} */ ([['X-Request-Id', 'ws-1'], ['X-Signet-Key-Id', 'sk_client'], ['X-Signet-Owner', 'acme'], ['X-Signet-Scopes', '']]);
      const { headers: sig } = await sign({ method: 'GET', url: `${l.origin}/stream`, headers }, {
        keyId: key.kid, key: key.privateKey, alg: 'ed25519', label: 'signet', tag: 'signet-gateway',
        components: ['@method', '@authority', '@path', 'x-signet-key-id', 'x-signet-owner', 'x-signet-scopes', 'x-request-id'],
      });
      const ws = new WebSocket(`ws://127.0.0.1:${l.port}/stream`, { headers: Object.fromEntries([...headers, ...Object.entries(sig)]) });
      const msg = await new Promise((resolve, reject) => {
        ws.on('message', (d) => resolve(String(d)));
        ws.on('error', reject);
      });
      assert.equal(msg, 'hello acme via true');
      ws.close();
      const direct = new WebSocket(`ws://127.0.0.1:${l.port}/stream`, { headers: { 'X-Signet-Owner': 'acme' } });
      const status = await new Promise((resolve) => {
        direct.on('unexpected-response', (_req, res) => resolve(res.statusCode));
        direct.on('error', () => resolve(0));
      });
      assert.equal(status, 401);
    } finally {
      await l.close();
    }
  });
});
