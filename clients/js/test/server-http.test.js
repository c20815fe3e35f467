// The verifier around a plain node:http listener, and on the upgrade path
// of a `ws` WebSocket server.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';

import { MemoryNonceStore, createVerifier, sign } from '../server.js';
import { KEY_ID, SECRET, listen, raw, rawRequest, reasonOf, signedHeaders } from './helpers/server.js';

const keys = { [KEY_ID]: { key: SECRET, owner: 'acme', scopes: ['stream'] }, sk_other: { key: SECRET, owner: 'other', scopes: [] } };

describe('node:http', () => {
  let l;
  const verifier = createVerifier({ keys, nonces: new MemoryNonceStore() });
  before(async () => {
    const server = http.createServer(verifier.handler(async (req, res) => {
      // The body is in the stream again, as if nobody had read it.
      let body = '';
      for await (const c of req) body += c;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ owner: req.signet.owner, body, raw: req.rawBody && req.rawBody.toString() }));
    }, { scopes: ['stream'] }));
    l = await listen(server);
  });
  after(() => l.close());

  test('the listener gets verified requests with their body and identity', async () => {
    const body = 'a=1&b=2';
    const h = await signedHeaders(l.origin, '/submit?x=1', { method: 'PUT', headers: [['Content-Type', 'application/x-www-form-urlencoded']], body });
    const res = await fetch(`${l.origin}/submit?x=1`, { method: 'PUT', headers: h, body });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { owner: 'acme', body, raw: body });
  });

  test('it never sees a refused request; scopes are checked', async () => {
    let res = await fetch(`${l.origin}/submit`);
    assert.equal(res.status, 401);
    assert.equal(reasonOf(await res.text()), 'missing-signature');
    res = await fetch(`${l.origin}/submit`, { headers: await signedHeaders(l.origin, '/submit', { keyId: 'sk_other' }) });
    assert.equal(res.status, 403);
    assert.equal(reasonOf(await res.text()), 'insufficient-scope');
  });
});

describe('ws', () => {
  let l;
  let port;
  const outcomes = [];
  const verifier = createVerifier({ keys, nonces: new MemoryNonceStore(), onOutcome: (req, o) => outcomes.push(o) });
  before(async () => {
    const server = http.createServer((req, res) => res.end('no'));
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws, req) => ws.send(`hello ${req.signet.owner}`));
    server.on('upgrade', async (req, socket, head) => {
      const id = await verifier.verifyUpgrade(req, socket, { scopes: ['stream'] });
      if (!id) return;
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    l = await listen(server);
    port = l.port;
  });
  after(() => l.close());

  /** Opens a socket; resolves to its first message, or the refusal. */
  const open = (url, headers) => new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('message', (m) => {
      resolve({ message: String(m) });
      ws.close();
    });
    ws.on('unexpected-response', (req, res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
    });
    ws.on('error', (err) => resolve({ error: err.message }));
  });

  test('a signed upgrade opens; its identity is on the request', async () => {
    const url = `ws://127.0.0.1:${port}/v1/stream?topic=orders`;
    const { headers } = await sign({ method: 'GET', url }, { keyId: KEY_ID, key: SECRET });
    assert.deepEqual(await open(url, headers), { message: 'hello acme' });
    assert.equal(outcomes.at(-1).status, 0);
  });

  test('unsigned, replayed, out-of-scope and body-carrying upgrades are refused on the socket', async () => {
    const url = `ws://127.0.0.1:${port}/v1/stream`;
    let r = await open(url, {});
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Signature realm="signet"');
    assert.equal(r.headers['accept-signature'], 'sig1=("@method" "@authority" "@path")');
    assert.equal(reasonOf(r.body), 'missing-signature');

    const { headers } = await sign({ method: 'GET', url }, { keyId: KEY_ID, key: SECRET });
    assert.deepEqual(await open(url, headers), { message: 'hello acme' });
    r = await open(url, headers);
    assert.equal(r.status, 401);
    assert.equal(reasonOf(r.body), 'replayed');

    const other = await sign({ method: 'GET', url }, { keyId: 'sk_other', key: SECRET });
    r = await open(url, other.headers);
    assert.equal(r.status, 403);
    assert.equal(reasonOf(r.body), 'insufficient-scope');

    const h = await signedHeaders(`http://127.0.0.1:${port}`, '/v1/stream', { method: 'GET' });
    const raw1 = await raw(port, rawRequest('GET', '/v1/stream', `127.0.0.1:${port}`,
      [...h, ['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13'], ['Content-Length', '3']], 'abc'));
    assert.equal(raw1.status, 400);
    assert.equal(reasonOf(raw1.body), 'unreadable-body');
  });
});
