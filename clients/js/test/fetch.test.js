// createSignedFetch against a local node:http server on 127.0.0.1 that
// verifies with this package, as a Signet gateway would (401 problem+json
// with WWW-Authenticate, Date and Accept-Signature on refusal), and against
// an API that answers 401 problems of its own and counts what it receives.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { MemoryNonceStore, createSignedFetch, generateKeyPair, parseAcceptSignature, readProblem, verify } from '../index.js';

const SECRET = Buffer.alloc(32, 7).toString('base64');
const ED = await generateKeyPair('ed25519');
const KEYS = {
  sk_test_abc: { alg: 'hmac-sha256', key: SECRET },
  pk_test_ed: { alg: 'ed25519', key: ED.publicKey },
  sk_expired: { alg: 'hmac-sha256', key: SECRET },
};

let server;
let origin;
let serverSkewMs = 0; // the server's clock minus the real one
let problemBase = 'https://signet.dev/problems/';
const log = [];
const nonces = new MemoryNonceStore({ now: () => Date.now() + serverSkewMs });

function problem(res, reason, status = 401) {
  res.writeHead(status, {
    'content-type': 'application/problem+json',
    date: new Date(Date.now() + serverSkewMs).toUTCString(),
    'www-authenticate': 'Signature realm="test"',
    'accept-signature': 'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created',
  });
  res.end(JSON.stringify({ type: `${problemBase}${reason}`, title: reason, status }));
}

before(async () => {
  server = http.createServer(async (req, res) => {
    try {
      const entry = { method: req.method, url: req.url };
      log.push(entry);
      if (req.headers['signature-input'] && /keyid="sk_expired"/.test(req.headers['signature-input'])) {
        problem(res, 'key-expired');
        return;
      }
      // Read the body through verify itself when asked to, else pass it in.
      const readItself = req.headers['x-test-read-itself'] === '1';
      let body;
      if (!readItself) {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        body = Buffer.concat(chunks);
      }
      const result = await verify(req, {
        keys: KEYS,
        body,
        now: new Date(Date.now() + serverSkewMs),
        nonces,
      });
      entry.ok = true;
      entry.nonce = result.nonce;
      entry.created = result.created;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keyId: result.keyId, body: Buffer.from(result.body || []).toString() }));
    } catch (err) {
      if (!err.reason) {
        res.writeHead(500);
        res.end(String(err.stack));
        return;
      }
      log[log.length - 1].reason = err.reason;
      problem(res, err.reason);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

const fresh = () => {
  log.length = 0;
  serverSkewMs = 0;
  problemBase = 'https://signet.dev/problems/';
};

test('signs GET and POST requests the server accepts; a fresh nonce each time', async () => {
  fresh();
  const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, alg: 'hmac-sha256' });
  const r1 = await fetch(`${origin}/v1/orders?customer=42&expand=items`);
  assert.equal(r1.status, 200, await r1.clone().text());
  const body = JSON.stringify({ customer: 42, note: 'x'.repeat(1000) });
  const r2 = await fetch(`${origin}/v1/orders`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  assert.equal(r2.status, 200, await r2.clone().text());
  assert.equal((await r2.json()).body, body);
  const r3 = await fetch(new Request(`${origin}/v1/x`, { method: 'PUT', body: new TextEncoder().encode('bytes') }));
  assert.equal(r3.status, 200, await r3.clone().text());
  const r4 = await fetch(`${origin}/v1/y`, { method: 'POST', body: new URLSearchParams({ a: '1 2' }), headers: { 'x-test-read-itself': '1' } });
  assert.equal(r4.status, 200, await r4.clone().text());
  assert.equal(log.length, 4);
  assert.equal(new Set(log.map((e) => e.nonce)).size, 4);
  assert.equal(fetch.clockOffset(origin), 0);
});

test('the Ed25519 key works the same', async () => {
  fresh();
  const fetch = createSignedFetch({ keyId: 'pk_test_ed', key: ED.privateKey });
  const res = await fetch(`${origin}/ed`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 200, await res.clone().text());
});

test('a client clock running ahead: corrected from Date, retried once, remembered', async () => {
  fresh();
  let local = Date.now() + 3600_000;
  const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, clock: () => local });
  const res = await fetch(`${origin}/v1/orders`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual(log.map((e) => e.reason || 'ok'), ['not-yet-valid', 'ok']);
  assert.ok(Math.abs(fetch.clockOffset(origin) + 3600) <= 2, `offset ${fetch.clockOffset(origin)}`);
  assert.notEqual(log[0].nonce, log[1].nonce);

  // The correction is kept: the next request passes at once.
  log.length = 0;
  local += 1000;
  assert.equal((await fetch(`${origin}/again`)).status, 200);
  assert.deepEqual(log.map((e) => e.reason || 'ok'), ['ok']);
});

test('a client clock running behind: "expired", corrected and retried', async () => {
  fresh();
  serverSkewMs = 1000_000;
  const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET });
  const res = await fetch(`${origin}/late`, { method: 'PUT', body: new Uint8Array([1, 2, 3]) });
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual(log.map((e) => e.reason || 'ok'), ['expired', 'ok']);
  assert.ok(Math.abs(fetch.clockOffset(origin) - 1000) <= 2, `offset ${fetch.clockOffset(origin)}`);
});

test('a retry happens once only, and never for other reasons', async () => {
  fresh();
  const fetch = createSignedFetch({ keyId: 'sk_expired', key: SECRET });
  const res = await fetch(`${origin}/k`);
  assert.equal(res.status, 401);
  const p = await readProblem(res);
  assert.equal(p.reason, 'key-expired', '"key-expired" must not be taken for "expired"');
  assert.equal(log.length, 1);
  assert.equal(fetch.clockOffset(origin), 0);
  assert.equal(parseAcceptSignature(res.headers.get('accept-signature'))[0].components.length, 6);
  assert.deepEqual(await res.json(), { type: 'https://signet.dev/problems/key-expired', title: 'key-expired', status: 401 });

  // A server whose clock keeps moving away: one retry, then the 401 is returned.
  fresh();
  let calls = 0;
  const drifting = createSignedFetch({
    keyId: 'sk_test_abc',
    key: SECRET,
    fetch: async (request) => {
      calls++;
      serverSkewMs += 3600_000;
      return globalThis.fetch(request);
    },
  });
  const r = await drifting(`${origin}/drift`);
  assert.equal(r.status, 401);
  assert.equal(calls, 2);
  assert.equal((await readProblem(r)).reason, 'expired');

  fresh();
  const noRetry = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, retry: false, clock: () => Date.now() + 3600_000 });
  assert.equal((await noRetry(`${origin}/x`)).status, 401);
  assert.equal(log.length, 1);
  assert.ok(noRetry.clockOffset(origin) < -3000, 'the offset is learnt even without a retry');
  assert.equal((await noRetry(`${origin}/x`)).status, 200);
});

test('a stream body with its Content-Digest set is sent as a stream and not retried', async () => {
  fresh();
  const text = '{"streamed":true}';
  const digest = `sha-256=:${createHash('sha256').update(text).digest('base64')}:`;
  const stream = () => new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode(text.slice(0, 5)));
      c.enqueue(new TextEncoder().encode(text.slice(5)));
      c.close();
    },
  });
  const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET });
  const res = await fetch(`${origin}/stream`, { method: 'POST', body: stream(), duplex: 'half', headers: { 'content-digest': digest, 'content-type': 'application/json' } });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal((await res.json()).body, text);

  const ahead = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, clock: () => Date.now() + 3600_000 });
  log.length = 0;
  const refused = await ahead(`${origin}/stream`, { method: 'POST', body: stream(), duplex: 'half', headers: { 'content-digest': digest } });
  assert.equal(refused.status, 401);
  assert.equal(log.length, 1, 'a stream cannot be replayed');

  // Without Content-Digest the stream is read first, so it can be retried.
  log.length = 0;
  const buffered = await ahead(`${origin}/stream`, { method: 'POST', body: stream(), duplex: 'half' });
  assert.equal(buffered.status, 200, await buffered.clone().text());
  assert.deepEqual(log.map((e) => e.reason || 'ok'), ['ok'], 'the offset learnt above applies');
});

test('options are checked up front', () => {
  assert.throws(() => createSignedFetch({ key: SECRET }), /keyId/);
  assert.throws(() => createSignedFetch({ keyId: 'k', key: ED.publicKey, alg: 'hmac-sha256' }), TypeError);
  assert.throws(() => createSignedFetch({ keyId: 'k', key: SECRET, problemBase: '' }), /problemBase/);
  const f = createSignedFetch({ keyId: 'k', key: SECRET });
  assert.throws(() => f.setClockOffset('https://a.example', 1.5), TypeError);
  f.setClockOffset('https://a.example/x?y', -3);
  assert.equal(f.clockOffset('https://a.example'), -3);
  assert.equal(f.clockOffset('https://a.example:8443'), 0);
});

test('a clock offset per origin, for at most 256 origins', async () => {
  fresh();
  const other = http.createServer((req, res) => {
    // A second gateway whose clock is 500 s behind: it refuses everything,
    // as not yet valid, so its Date is learnt but never accepted.
    res.writeHead(401, {
      'content-type': 'application/problem+json',
      'www-authenticate': 'Signature',
      date: new Date(Date.now() - 500_000).toUTCString(),
    });
    res.end(JSON.stringify({ type: 'https://signet.dev/problems/not-yet-valid' }));
  });
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const otherOrigin = `http://127.0.0.1:${other.address().port}`;
    serverSkewMs = 1000_000;
    const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET });
    assert.equal((await fetch(`${origin}/a`)).status, 200);
    assert.equal((await fetch(`${otherOrigin}/b`)).status, 401);
    assert.ok(Math.abs(fetch.clockOffset(origin) - 1000) <= 2, `offset ${fetch.clockOffset(origin)}`);
    assert.ok(Math.abs(fetch.clockOffset(otherOrigin) + 500) <= 2, `offset ${fetch.clockOffset(otherOrigin)}`);
    log.length = 0;
    assert.equal((await fetch(`${origin}/c`)).status, 200, 'the other origin did not move this one');
    assert.deepEqual(log.map((e) => e.reason || 'ok'), ['ok']);
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }

  const f = createSignedFetch({ keyId: 'k', key: SECRET });
  for (let i = 0; i < 300; i++) f.setClockOffset(`https://h${i}.example`, i + 1);
  assert.equal(f.clockOffset('https://h0.example'), 0, 'the oldest origins are forgotten');
  assert.equal(f.clockOffset('https://h43.example'), 0);
  assert.equal(f.clockOffset('https://h44.example'), 45);
  assert.equal(f.clockOffset('https://h299.example'), 300);
});

test('problemBase names the gateway\'s problem types', async () => {
  fresh();
  problemBase = 'https://gw.example/errors/';
  const ahead = () => Date.now() + 3600_000;
  const plain = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, clock: ahead });
  assert.equal((await plain(`${origin}/p`)).status, 401);
  assert.equal(log.length, 1, 'not the default base: not the gateway');
  log.length = 0;
  const configured = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET, clock: ahead, problemBase });
  assert.equal((await configured(`${origin}/p`)).status, 200);
  assert.deepEqual(log.map((e) => e.reason || 'ok'), ['not-yet-valid', 'ok']);
});

// An API behind the gateway: it counts the POSTs it receives and answers
// each with the 401 the test asks for.
test('an API\'s own 401 is never sent a POST twice', async () => {
  let posts = 0;
  let answer;
  const api = http.createServer(async (req, res) => {
    for await (const chunk of req) void chunk;
    if (req.method === 'POST') posts++;
    res.writeHead(401, answer.headers());
    res.end(JSON.stringify({ type: answer.type, title: 'refused by the API' }));
  });
  await new Promise((resolve) => api.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${api.address().port}/v1/orders`;
  const problemJSON = { 'content-type': 'application/problem+json' };
  const dated = (ms) => ({ date: new Date(Date.now() + ms).toUTCString() });
  const cases = [
    { name: 'Signet type, no challenge', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON }) },
    { name: 'Signet type, a Bearer challenge', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Bearer realm="api"', ...dated(3600_000) }) },
    { name: 'the API\'s own type base', type: 'https://api.example/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature', ...dated(3600_000) }) },
    { name: 'a lookalike base', type: 'https://signet.dev/problems/x/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature', ...dated(3600_000) }) },
    { name: 'not problem+json', type: 'https://signet.dev/problems/expired', headers: () => ({ 'content-type': 'application/json', 'www-authenticate': 'Signature', ...dated(3600_000) }) },
    { name: 'a gateway lookalike whose Date agrees with our clock', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature realm="api"', ...dated(0) }) },
    { name: 'a lookalike whose Date is a second ahead', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature', ...dated(1000) }) },
    { name: '"expired" with a Date behind our clock', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature', ...dated(-3600_000) }) },
    { name: '"not-yet-valid" with a Date ahead of our clock', type: 'https://signet.dev/problems/not-yet-valid', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature', ...dated(3600_000) }) },
    { name: 'a lookalike without Date', type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature' }) },
  ];
  try {
    for (const c of cases) {
      answer = c;
      posts = 0;
      const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET });
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"qty":1}' });
      assert.equal(res.status, 401, c.name);
      assert.equal(posts, 1, c.name);
      assert.equal(fetch.clockOffset(url), 0, c.name);
    }
    // The control: the gateway's refusal, an hour ahead. It is retried once,
    // and no more though the second answer is the same.
    answer = { type: 'https://signet.dev/problems/expired', headers: () => ({ ...problemJSON, 'www-authenticate': 'Signature realm="signet"', ...dated(3600_000) }) };
    posts = 0;
    const fetch = createSignedFetch({ keyId: 'sk_test_abc', key: SECRET });
    assert.equal((await fetch(url, { method: 'POST', body: '{}' })).status, 401);
    assert.equal(posts, 2);
    assert.ok(Math.abs(fetch.clockOffset(url) - 3600) <= 2);
  } finally {
    await new Promise((resolve) => api.close(resolve));
  }
});

test('readProblem reads problem+json only, and at most 64 KiB of it', async () => {
  const problem = (body, type = 'application/problem+json') => new Response(body, { status: 401, headers: { 'content-type': type } });
  assert.equal((await readProblem(problem('{"type":"https://signet.dev/problems/replayed"}'))).reason, 'replayed');
  assert.equal(await readProblem(problem('{"type":"x"}', 'application/json')), null);
  assert.equal(await readProblem(problem('not json')), null);
  const big = JSON.stringify({ type: 'https://signet.dev/problems/expired', detail: 'x'.repeat(64 << 10) });
  assert.equal(await readProblem(problem(big)), null);
  const fits = JSON.stringify({ type: 'https://signet.dev/problems/expired', detail: 'x'.repeat((64 << 10) - 60) });
  assert.ok(fits.length <= 64 << 10);
  assert.equal((await readProblem(problem(fits))).reason, 'expired');
  const res = problem('{"type":"https://signet.dev/problems/replayed"}');
  await readProblem(res);
  assert.equal((await res.json()).type, 'https://signet.dev/problems/replayed', 'the response is still readable');

  // A refusal too big to read is not taken for the gateway's, and what the
  // wrapper returns can still be read whole.
  let calls = 0;
  const signed = createSignedFetch({
    keyId: 'k',
    key: SECRET,
    fetch: async () => {
      calls++;
      return new Response(big, { status: 401, headers: { 'content-type': 'application/problem+json', 'www-authenticate': 'Signature', date: new Date(Date.now() + 3600_000).toUTCString() } });
    },
  });
  const refused = await signed('https://api.example/v1/x', { method: 'POST', body: '{}' });
  assert.equal(calls, 1);
  assert.equal((await refused.text()).length, big.length);
});
