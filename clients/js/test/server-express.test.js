// The verifier as Express middleware, on real Express 4 and 5 over
// loopback: mounted under a prefix and behind a router, with the body
// parsers after it, and every refusal of the Go middleware.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express5 from 'express';
import express4 from 'express4';
import multer from 'multer';

import { MemoryNonceStore, NonceStoreFullError, SignatureError, createVerifier, importKey } from '../server.js';
import { KEY_ID, SECRET, listen, raw, rawRequest, reasonOf, signedHeaders } from './helpers/server.js';

const key = { alg: 'hmac-sha256', key: SECRET, owner: 'acme', scopes: ['orders:read', 'orders:write'] };

for (const [name, express] of /** @type {const} */ ([['Express 5', express5], ['Express 4', express4]])) {
  describe(name, () => {
    let srv;
    let host;
    let seen;
    const outcomes = [];
    const verifier = createVerifier({
      keys: { [KEY_ID]: key, sk_reader: { alg: 'hmac-sha256', key: SECRET, owner: 'ro', scopes: ['orders:read'] } },
      nonces: new MemoryNonceStore(),
      maxBodyBytes: 64 << 10,
      onOutcome: (req, o) => outcomes.push(o),
    });

    before(async () => {
      const app = express();
      const api = express.Router();
      api.use(express.json());
      api.use(express.urlencoded({ extended: false }));
      api.use(express.text());
      api.use(express.raw({ type: 'application/octet-stream' }));
      const echo = (req, res) => {
        seen = { url: req.url, originalUrl: req.originalUrl, body: req.body, rawBody: req.rawBody && req.rawBody.toString('latin1'), headers: req.headers, signet: req.signet };
        res.json({ ok: true, keyId: req.signet.keyId, owner: req.signet.owner, body: Buffer.isBuffer(req.body) ? req.body.toString('latin1') : req.body });
      };
      api.post('/orders', verifier.requireScopes('orders:write'), echo);
      api.get('/orders/:id', verifier.requireScopes('orders:read'), echo);
      api.post('/files', multer({ storage: multer.memoryStorage() }).single('doc'), (req, res) => {
        res.json({ field: req.body.title, file: req.file && req.file.buffer.toString('latin1'), name: req.file && req.file.originalname });
      });
      api.all('/echo', echo);
      // The case of the issue: mounted under a prefix, Express rewrites
      // req.url to what follows it.
      app.use('/v1', verifier.middleware, api);
      srv = http.createServer(app);
      const l = await listen(srv);
      host = `127.0.0.1:${l.port}`;
      srv.closeIt = l.close;
      srv.port = l.port;
    });
    after(() => srv.closeIt());

    const origin = () => `http://${host}`;
    const send = async (method, target, { headers = [], body, sign = {} } = {}) => {
      const h = await signedHeaders(origin(), target, { method, headers, body, ...sign });
      const res = await fetch(origin() + target, { method, headers: h, body });
      return { res, headers: h, text: await res.text() };
    };

    test('a signed request under the prefix passes, with its identity', async () => {
      const { res, text } = await send('GET', '/v1/orders/7?expand=items');
      assert.equal(res.status, 200, text);
      assert.equal(seen.url, '/orders/7?expand=items');
      assert.equal(seen.originalUrl, '/v1/orders/7?expand=items');
      assert.equal(seen.signet.keyId, KEY_ID);
      assert.equal(seen.signet.owner, 'acme');
      assert.deepEqual([...seen.signet.scopes], ['orders:read', 'orders:write']);
      assert.equal(seen.signet.alg, 'hmac-sha256');
      assert.equal(seen.signet.label, 'sig1');
      assert.equal(seen.rawBody, undefined === seen.rawBody ? undefined : seen.rawBody);
      assert.equal(outcomes.at(-1).status, 0);
      assert.equal(outcomes.at(-1).keyId, KEY_ID);
    });

    test('the body parsers after the middleware see the body', async () => {
      const cases = [
        ['application/json', '{"sku":"A-1","qty":2}', { sku: 'A-1', qty: 2 }],
        ['application/x-www-form-urlencoded', 'sku=A-1&qty=2', { sku: 'A-1', qty: '2' }],
        ['text/plain', 'hello, world', 'hello, world'],
        ['application/octet-stream', 'raw\u00ffbytes', 'raw\u00ffbytes'],
      ];
      for (const [type, body, want] of cases) {
        const bytes = Buffer.from(body, 'latin1');
        const { res, text } = await send('POST', '/v1/echo', { headers: [['Content-Type', type]], body: bytes });
        assert.equal(res.status, 200, `${type}: ${text}`);
        assert.deepEqual(JSON.parse(text).body, want, type);
        assert.equal(seen.rawBody, body, type);
      }
    });

    test('a chunked body of unknown length reaches the parser too', async () => {
      const body = JSON.stringify({ n: 'x'.repeat(5000) });
      const h = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      const chunked = `${(2000).toString(16)}\r\n${body.slice(0, 2000)}\r\n${(body.length - 2000).toString(16)}\r\n${body.slice(2000)}\r\n0\r\n\r\n`;
      const r = await raw(srv.port, rawRequest('POST', '/v1/echo', host, [...h, ['Transfer-Encoding', 'chunked']], chunked));
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).body.n.length, 5000);
    });

    test('an empty body, with or without Content-Length, leaves the parsers working', async () => {
      const h = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']] });
      let r = await raw(srv.port, rawRequest('POST', '/v1/echo', host, [...h, ['Content-Length', '0']], ''));
      assert.equal(r.status, 200, r.body);
      // A body of unknown length may hold content: content-digest is due.
      const empty = [['Content-Type', 'application/json'], ['Content-Digest', 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:']];
      const c = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: empty, components: ['@method', '@authority', '@path', 'content-type', 'content-digest'] });
      r = await raw(srv.port, rawRequest('POST', '/v1/echo', host, [...c, ['Transfer-Encoding', 'chunked']], '0\r\n\r\n'));
      assert.equal(r.status, 200, r.body);
      const u = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']] });
      r = await raw(srv.port, rawRequest('POST', '/v1/echo', host, [...u, ['Transfer-Encoding', 'chunked']], '0\r\n\r\n'));
      assert.equal(r.status, 401);
      assert.equal(reasonOf(r.body), 'missing-component');
    });

    test('multer reads a multipart body after the middleware', async () => {
      const boundary = 'xYzZY';
      const body = `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nQ3\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="doc"; filename="r.txt"\r\nContent-Type: text/plain\r\n\r\nreport body\r\n--${boundary}--\r\n`;
      const { res, text } = await send('POST', '/v1/files', { headers: [['Content-Type', `multipart/form-data; boundary=${boundary}`]], body });
      assert.equal(res.status, 200, text);
      assert.deepEqual(JSON.parse(text), { field: 'Q3', file: 'report body', name: 'r.txt' });
    });

    test('an unsigned request: 401 missing-signature as the Go middleware answers it', async () => {
      const res = await fetch(`${origin()}/v1/orders?customer=42`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('www-authenticate'), 'Signature realm="signet"');
      assert.equal(res.headers.get('accept-signature'), 'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest")');
      assert.match(res.headers.get('date'), /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/);
      assert.equal(await res.text(), '{"type":"https://signet.dev/problems/missing-signature","title":"Missing signature","status":401,"detail":"the message has no Signature-Input and Signature fields"}');
      assert.equal(outcomes.at(-1).reason, 'missing-signature');
      assert.ok(outcomes.at(-1).error instanceof SignatureError);
    });

    test('tampered, replayed, unknown-key, insufficient-scope', async () => {
      const body = '{"qty":1}';
      const h = await signedHeaders(origin(), '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      let res = await fetch(`${origin()}/v1/orders`, { method: 'POST', headers: h, body: '{"qty":9}' });
      assert.equal(res.status, 401);
      const p = JSON.parse(await res.text());
      assert.equal(reasonOf(JSON.stringify(p)), 'digest-mismatch');
      assert.equal(p.signature, 'sig1');
      // The nonce was spent before the body was read: the good body is a replay now.
      res = await fetch(`${origin()}/v1/orders`, { method: 'POST', headers: h, body });
      assert.equal(reasonOf(await res.text()), 'replayed');

      const fresh = await signedHeaders(origin(), '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      res = await fetch(`${origin()}/v1/orders`, { method: 'POST', headers: fresh, body });
      assert.equal(res.status, 200);
      res = await fetch(`${origin()}/v1/orders`, { method: 'POST', headers: fresh, body });
      assert.equal(res.status, 401);
      assert.equal(reasonOf(await res.text()), 'replayed');

      const unknown = await signedHeaders(origin(), '/v1/orders/1', { keyId: 'sk_nobody' });
      res = await fetch(`${origin()}/v1/orders/1`, { headers: unknown });
      assert.equal(reasonOf(await res.text()), 'unknown-key');
      assert.equal(outcomes.at(-1).keyId, 'sk_nobody');

      const reader = await signedHeaders(origin(), '/v1/orders', { method: 'POST', headers: [['Content-Type', 'application/json']], body, keyId: 'sk_reader' });
      res = await fetch(`${origin()}/v1/orders`, { method: 'POST', headers: reader, body });
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('www-authenticate'), null);
      assert.deepEqual(JSON.parse(await res.text()), {
        type: 'https://signet.dev/problems/insufficient-scope', title: 'Insufficient scope', status: 403, detail: 'this needs the scope "orders:write"',
      });
    });

    test('the signature covers the original target, not the rewritten one', async () => {
      // Signed for /orders/7 (what the router sees), sent to /v1/orders/7.
      const h = await signedHeaders(origin(), '/orders/7');
      const res = await fetch(`${origin()}/v1/orders/7`, { headers: h });
      assert.equal(res.status, 401);
      assert.equal(reasonOf(await res.text()), 'bad-signature');
    });

    test('refusals of what the application would read otherwise than verified', async () => {
      const port = srv.port;
      const target = '/v1/orders/7?x=1';
      const h = await signedHeaders(origin(), target);
      let r = await raw(port, rawRequest('GET', '/v1/orders/7?x=1#&admin=true', host, h));
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'invalid-target');

      r = await raw(port, `GET ${target} HTTP/1.1\r\nHost: [::1%25evil.example]:${port}\r\n${h.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'invalid-host');

      r = await raw(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nHost: other.example\r\n${h.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'invalid-host');

      const body = '{"qty":1}';
      const ch = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      r = await raw(port, rawRequest('POST', '/v1/echo', host, [...ch, ['Connection', 'keep-alive, content-type, content-digest']], body));
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'hop-by-hop-field');

      const th = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      r = await raw(port, rawRequest('POST', '/v1/echo', host, [...th, ['Transfer-Encoding', 'chunked'], ['Trailer', 'X-Signet-Owner']],
        `${body.length.toString(16)}\r\n${body}\r\n0\r\nX-Signet-Owner: admin\r\n\r\n`));
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'trailers-not-accepted');

      // Undeclared trailers are found once the body is read.
      const uh = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'application/json']], body });
      r = await raw(port, rawRequest('POST', '/v1/echo', host, [...uh, ['Transfer-Encoding', 'chunked']],
        `${body.length.toString(16)}\r\n${body}\r\n0\r\nX-Signet-Owner: admin\r\n\r\n`));
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'trailers-not-accepted');

      // Absolute form: Express would route on its path, the Host field would differ.
      r = await raw(port, rawRequest('GET', `http://${host}${target}`, host, h));
      assert.equal(r.status, 400);
      assert.equal(reasonOf(r.body), 'invalid-target');
    });

    test('a covered field on several lines reaches the handler as the value that was verified', async () => {
      const headers = [['Content-Type', 'application/json'], ['X-Tenant', 'a'], ['X-Tenant', 'b'], ['Content-Type', 'text/html']];
      const h = await signedHeaders(origin(), '/v1/echo', {
        headers, components: ['@method', '@authority', '@path', 'content-type', 'x-tenant'],
      });
      const r = await raw(srv.port, rawRequest('GET', '/v1/echo', host, h));
      assert.equal(r.status, 200, r.body);
      // node:http alone would keep only the first Content-Type line.
      assert.equal(seen.headers['content-type'], 'application/json, text/html');
      assert.equal(seen.headers['x-tenant'], 'a, b');

      const empty = [['X-Tenant', 'a'], ['X-Tenant', '']];
      const e = await signedHeaders(origin(), '/v1/echo', { headers: empty, components: ['@method', '@authority', '@path', 'x-tenant'] });
      const r2 = await raw(srv.port, rawRequest('GET', '/v1/echo', host, e));
      assert.equal(r2.status, 400);
      assert.equal(reasonOf(r2.body), 'invalid-field');
    });

    test('an unsigned request is refused without reading its body, and its connection closed', async () => {
      // A body declared but never sent: the answer cannot wait for it.
      const t0 = Date.now();
      const r = await raw(srv.port, `POST /v1/echo HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n{"partial":`);
      assert.equal(r.status, 401);
      assert.equal(r.headers.connection, 'close');
      assert.ok(Date.now() - t0 < 2000);
    });

    test('bodies over the limit: 413 before reading a declared one, as soon as an unknown one passes it', async () => {
      const big = 'x'.repeat((64 << 10) + 1);
      const h = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'text/plain']], body: big });
      let r = await raw(srv.port, `POST /v1/echo HTTP/1.1\r\nHost: ${host}\r\n${h.map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: ${big.length}\r\n\r\n`);
      assert.equal(r.status, 413);
      assert.equal(reasonOf(r.body), 'body-too-large');
      assert.equal(r.headers.connection, 'close');

      const h2 = await signedHeaders(origin(), '/v1/echo', { method: 'POST', headers: [['Content-Type', 'text/plain']], body: big });
      r = await raw(srv.port, rawRequest('POST', '/v1/echo', host, [...h2, ['Transfer-Encoding', 'chunked']], `${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`));
      assert.equal(r.status, 413);
      assert.equal(verifier.bodyBudgetLeft, 64 << 20, 'the budget is given back');
    });
  });
}

describe('refusals that are the server\'s', () => {
  const serve = async (options, app = express5()) => {
    const verifier = createVerifier(options);
    app.use(verifier.middleware);
    app.use(express5.json());
    app.all('*splat', (req, res) => res.json({ ok: true, body: req.body }));
    const srv = http.createServer(app);
    const l = await listen(srv);
    return { ...l, verifier, srv };
  };

  test('a nonce store that cannot answer, or is full: 503 with Retry-After', async () => {
    for (const nonces of [
      { remember: async () => { throw new Error('redis: connection refused (a secret-free cause)'); } },
      { remember: () => { throw new NonceStoreFullError('full'); } },
    ]) {
      const outcomes = [];
      const s = await serve({ keys: { [KEY_ID]: { key: SECRET } }, nonces, onOutcome: (req, o) => outcomes.push(o) });
      try {
        const h = await signedHeaders(s.origin, '/x');
        const res = await fetch(`${s.origin}/x`, { headers: h });
        assert.equal(res.status, 503);
        assert.equal(res.headers.get('retry-after'), '1');
        const p = JSON.parse(await res.text());
        assert.equal(p.type, 'https://signet.dev/problems/unavailable');
        assert.equal(p.detail, 'the server cannot check signatures right now; retry later');
        assert.ok(outcomes[0].error instanceof Error);
      } finally {
        await s.close();
      }
    }
  });

  test('a key store that throws: 503; one that refuses with a reason: that reason', async () => {
    const keys = (id) => {
      if (id === 'sk_down') throw new Error('database is down');
      if (id === 'sk_revoked') throw new SignatureError('key-revoked', 'the key was revoked');
      return { key: SECRET };
    };
    const s = await serve({ keys, nonces: new MemoryNonceStore() });
    try {
      let res = await fetch(`${s.origin}/x`, { headers: await signedHeaders(s.origin, '/x', { keyId: 'sk_down' }) });
      assert.equal(res.status, 503);
      res = await fetch(`${s.origin}/x`, { headers: await signedHeaders(s.origin, '/x', { keyId: 'sk_revoked' }) });
      assert.equal(res.status, 401);
      assert.equal(reasonOf(await res.text()), 'key-revoked');
    } finally {
      await s.close();
    }
  });

  test('the body budget: a request that would pass it gets 503, and its share comes back', async () => {
    const s = await serve({ keys: { [KEY_ID]: { key: await importKey(SECRET) } }, nonces: new MemoryNonceStore(), maxBodyBytes: 1000, bodyBudget: 1500 });
    try {
      const body = 'y'.repeat(1000);
      const h1 = await signedHeaders(s.origin, '/a', { method: 'POST', headers: [['Content-Type', 'text/plain']], body });
      const h2 = await signedHeaders(s.origin, '/a', { method: 'POST', headers: [['Content-Type', 'text/plain']], body });
      // The first holds 1000 bytes while its body trickles in.
      const first = raw(s.port, rawRequest('POST', '/a', `127.0.0.1:${s.port}`, [...h1, ['Content-Length', '1000']], body.slice(0, 10)), { ms: 1500 });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(s.verifier.bodyBudgetLeft, 500);
      const second = await raw(s.port, rawRequest('POST', '/a', `127.0.0.1:${s.port}`, h2, body));
      assert.equal(second.status, 503);
      assert.equal(second.headers['retry-after'], '1');
      assert.equal(JSON.parse(second.body).detail, 'the server has too many request bodies in memory; retry later');
      await first;
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(s.verifier.bodyBudgetLeft, 1500);
    } finally {
      await s.close();
    }
  });

  test('memory for the bytes that arrive, not for the lengths announced; none for unsigned heads', async () => {
    const s = await serve({ keys: { [KEY_ID]: { key: SECRET } }, nonces: new MemoryNonceStore(), maxBodyBytes: 8 << 20, bodyBudget: 128 << 20 });
    const external = () => {
      global.gc?.();
      return process.memoryUsage().arrayBuffers;
    };
    try {
      const host = `127.0.0.1:${s.port}`;
      const length = 4 << 20;
      const heads = [];
      for (let i = 0; i < 16; i++) {
        const h = await signedHeaders(s.origin, '/upload', { method: 'POST', headers: [['Content-Type', 'text/plain']], body: 'x'.repeat(length) });
        heads.push(rawRequest('POST', '/upload', host, [...h, ['Content-Length', String(length)]], 'x'.repeat(100)));
      }
      for (let i = 0; i < 64; i++) heads.push(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${length}\r\n\r\n`);
      const before = external();
      const pending = heads.map((h) => raw(s.port, h, { ms: 800 }));
      await new Promise((r) => setTimeout(r, 500));
      const grown = external() - before;
      assert.equal(s.verifier.bodyBudgetLeft, (128 << 20) - 16 * length, 'the budget holds the announced lengths');
      const answers = await Promise.all(pending);
      assert.deepEqual(answers.slice(16).map((a) => a.status), Array(64).fill(401));
      assert.ok(grown < 8 << 20, `external memory grew by ${grown >> 10} KiB`);
    } finally {
      await s.close();
    }
  });

  test('debug mode shows the signature base of a bad signature; it is off by default', async () => {
    for (const debug of [false, true]) {
      const s = await serve({ keys: { [KEY_ID]: { key: SECRET } }, nonces: new MemoryNonceStore(), debug });
      try {
        const h = await signedHeaders(s.origin, '/signed');
        const res = await fetch(`${s.origin}/other`, { headers: h });
        const p = JSON.parse(await res.text());
        assert.equal(reasonOf(JSON.stringify(p)), 'bad-signature');
        if (debug) assert.match(p.signature_base, /^"@method": GET\n"@authority": 127\.0\.0\.1:\d+\n"@path": \/other\n"@signature-params": /);
        else assert.equal(p.signature_base, undefined);
      } finally {
        await s.close();
      }
    }
  });

  test('100 Continue is sent only once the signatures verify', async () => {
    const verifier = createVerifier({ keys: { [KEY_ID]: { key: SECRET } }, nonces: new MemoryNonceStore() });
    const app = express5();
    app.use(verifier.middleware);
    app.use(express5.text());
    app.post('/up', (req, res) => res.json({ body: req.body }));
    const srv = http.createServer(app);
    srv.on('checkContinue', verifier.checkContinue(app));
    const l = await listen(srv);
    try {
      const host = `127.0.0.1:${l.port}`;
      const unsigned = await raw(l.port, `POST /up HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
      assert.equal(unsigned.status, 401);
      assert.deepEqual(unsigned.interim, []);

      const h = await signedHeaders(l.origin, '/up', { method: 'POST', headers: [['Content-Type', 'text/plain']], body: 'hello' });
      const r = await new Promise((resolve, reject) => {
        const req = http.request(`${l.origin}/up`, { method: 'POST', headers: { ...Object.fromEntries(h), Expect: '100-continue', 'Content-Length': '5' } });
        let got100 = false;
        req.on('continue', () => {
          got100 = true;
          req.end('hello');
        });
        req.on('response', (res) => {
          let b = '';
          res.on('data', (c) => { b += c; });
          res.on('end', () => resolve({ status: res.statusCode, body: b, got100 }));
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.equal(r.status, 200);
      assert.ok(r.got100);
      assert.deepEqual(JSON.parse(r.body), { body: 'hello' });
    } finally {
      await l.close();
    }
  });
});

test('createVerifier: replay protection is not optional by accident', () => {
  assert.throws(() => createVerifier({ keys: {} }), /nonce store/);
  assert.throws(() => createVerifier({ keys: {}, nonces: false }), /requiredParams without "nonce"/);
  assert.ok(createVerifier({ keys: {}, nonces: false, policy: { requiredParams: ['created', 'keyid'] } }));
  assert.throws(() => createVerifier({ nonces: new MemoryNonceStore() }), /keys/);
});
