// RedisNonceStore against the real Redis at 127.0.0.1:6379, through
// node-redis (current and 4) and ioredis: one behavioural suite for each,
// a lost Redis noticed, a hung one failing closed, and two Node processes
// sharing a Redis refusing each other's replays.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import express from 'express';

import { RedisNonceStore, createVerifier } from '../server.js';
import { KEY_ID, SECRET, listen, reasonOf, signedHeaders } from './helpers/server.js';
import { REDIS_URL, clientKinds, dropPrefix, hangingProxy, redisMissing, testPrefix } from './helpers/redis.js';

const skip = (await redisMissing()) || false;
const sec = (ms) => new Date(ms);

for (const [kind, connect] of Object.entries(clientKinds)) {
  describe(`RedisNonceStore with ${kind}`, { skip }, () => {
    let conn;
    const prefixes = [];
    const prefix = () => {
      const p = testPrefix();
      prefixes.push(p);
      return p;
    };
    before(async () => { conn = await connect(); });
    after(async () => {
      await conn.close();
      for (const p of prefixes) await dropPrefix(p);
    });

    test('a pair is recorded once, for as long as asked', async () => {
      const p = prefix();
      await RedisNonceStore.prepare(conn.client, { prefix: p });
      const store = new RedisNonceStore(conn.client, { prefix: p });
      const now = Date.now();
      assert.equal(await store.remember('k1', 'n1', sec(now - 1000), sec(now + 60_000)), true);
      assert.equal(await store.remember('k1', 'n1', sec(now - 1000), sec(now + 60_000)), false);
      // Other keyids and nonces are other pairs, ("ab","c") ≠ ("a","bc").
      assert.equal(await store.remember('k2', 'n1', sec(now), sec(now + 60_000)), true);
      assert.equal(await store.remember('ab', 'c', sec(now), sec(now + 60_000)), true);
      assert.equal(await store.remember('a', 'bc', sec(now), sec(now + 60_000)), true);
      // A second store on the same prefix (another process) sees them.
      const other = new RedisNonceStore(conn.client, { prefix: p });
      assert.equal(await other.remember('k1', 'n1', sec(now), sec(now + 60_000)), false);

      const r = new Redis(REDIS_URL);
      try {
        const keys = await r.keys(`${p}*`);
        const pairs = keys.filter((k) => /\}[A-Za-z0-9_-]{22}$/.test(k));
        assert.equal(pairs.length, 4);
        for (const k of pairs) {
          const ttl = await r.pttl(k);
          assert.ok(ttl > 58_000 && ttl <= 60_001, `${k}: ${ttl}`);
        }
        // One sentinel per hash tag, with no horizon after prepare.
        const sentinels = keys.filter((k) => /\{[0-9a-f]{3}\}$/.test(k));
        assert.equal(sentinels.length, 1024);
        assert.equal(await r.get(sentinels[0]), '0');
        assert.equal(await r.pttl(sentinels[0]), -1);
      } finally {
        r.disconnect();
      }
    });

    test('a time already past records nothing; a signature without created is not vouched for', async () => {
      const p = prefix();
      await RedisNonceStore.prepare(conn.client, { prefix: p });
      const store = new RedisNonceStore(conn.client, { prefix: p });
      const now = Date.now();
      assert.equal(await store.remember('k', 'past', sec(now - 10_000), sec(now - 1)), true);
      assert.equal(await store.remember('k', 'past', sec(now - 10_000), sec(now + 10_000)), true);
      assert.equal(await store.remember('k', 'nocreated', undefined, sec(now + 10_000)), false);
    });

    test('a Redis that lost its data is noticed: what came before is refused for the skew', async () => {
      const p = prefix();
      await RedisNonceStore.prepare(conn.client, { prefix: p });
      let clock = Date.now();
      const losses = [];
      const store = new RedisNonceStore(conn.client, { prefix: p, maxSkew: 30, now: () => clock, onLoss: (h) => losses.push(h) });
      assert.equal(await store.remember('k', 'before', sec(clock - 5000), sec(clock + 300_000)), true);
      assert.equal(await store.ready(), 0);
      await dropPrefix(p); // the loss
      // The captured request comes again: not vouched for.
      assert.equal(await store.remember('k', 'before', sec(clock - 5000), sec(clock + 300_000)), false);
      const lostAt = clock;
      for (let i = 0; i < 100 && losses.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(losses.length, 1);
      assert.equal(losses[0].getTime(), lostAt + 30_000);
      // Every tag knows it, not just the one that found it.
      assert.equal(await store.remember('k2', 'other-tag', sec(lostAt + 29_000), sec(lostAt + 300_000)), false);
      clock += 31_000;
      assert.equal(await store.remember('k', 'after', sec(lostAt + 30_000), sec(clock + 300_000)), true);
    });

    test('on a new Redis without prepare, the first stores refuse what came before the skew', async () => {
      const p = prefix();
      const losses = [];
      const now = Date.now();
      const store = new RedisNonceStore(conn.client, { prefix: p, maxSkew: 30, now: () => now, onLoss: (h) => losses.push(h) });
      assert.equal(await store.ready(), 1024);
      assert.equal(losses.length, 1);
      assert.equal(await store.remember('k', 'n', sec(now), sec(now + 300_000)), false);
      assert.equal(await store.remember('k', 'n2', sec(now + 30_000), sec(now + 300_000)), true);
    });
  });
}

describe('RedisNonceStore failing closed', { skip }, () => {
  test('a Redis that stops answering: the call fails within the timeout, the request gets 503', async () => {
    const proxy = await hangingProxy();
    const conn = await clientKinds['node-redis'](proxy.url);
    const p = testPrefix();
    try {
      await RedisNonceStore.prepare(conn.client, { prefix: p });
      const store = new RedisNonceStore(conn.client, { prefix: p, timeout: 150 });
      await store.ready();
      const verifier = createVerifier({ keys: { [KEY_ID]: { key: SECRET } }, nonces: store });
      const app = express();
      app.use(verifier.middleware);
      app.get('/x', (req, res) => res.end('ok'));
      const l = await listen(http.createServer(app));
      try {
        let res = await fetch(`${l.origin}/x`, { headers: await signedHeaders(l.origin, '/x') });
        assert.equal(res.status, 200);
        proxy.hang();
        const t0 = Date.now();
        res = await fetch(`${l.origin}/x`, { headers: await signedHeaders(l.origin, '/x') });
        assert.equal(res.status, 503);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.equal(reasonOf(await res.text()), 'unavailable');
        assert.ok(Date.now() - t0 < 1500, `${Date.now() - t0} ms`);
      } finally {
        await l.close();
      }
    } finally {
      await conn.close();
      await proxy.close();
      await dropPrefix(p);
    }
  });

  test('a client it does not know is refused at once', () => {
    assert.throws(() => new RedisNonceStore({ get() {} }), /node-redis \(4 or later\) or ioredis/);
  });
});

describe('two Node processes sharing Redis', { skip }, () => {
  test('refuse each other\'s replays', async () => {
    const p = testPrefix();
    const script = fileURLToPath(new URL('./helpers/redis-server.mjs', import.meta.url));
    const procs = [];
    try {
      const conn = await clientKinds.ioredis();
      await RedisNonceStore.prepare(conn.client, { prefix: p });
      await conn.close();
      const origins = [];
      for (const kind of ['node-redis', 'ioredis']) {
        const proc = spawn(process.execPath, [script], { env: { ...process.env, PREFIX: p, KIND: kind, KEY_ID, SECRET }, stdio: ['ignore', 'pipe', 'inherit'] });
        procs.push(proc);
        const [line] = await once(proc.stdout, 'data');
        origins.push(String(line).trim());
      }
      const [a, b] = origins;
      assert.notEqual(a, b);
      // Both listen on 127.0.0.1 and serve the same authority to the signer.
      for (const [first, second] of [[a, b], [b, a]]) {
        const h = await signedHeaders('http://api.example', '/v1/orders/7');
        const send = (origin) => fetch(`${origin}/v1/orders/7`, { headers: [...h.filter(([k]) => k !== 'Host'), ['x-forwarded-host', 'api.example']] });
        let res = await send(first);
        assert.equal(res.status, 200, await res.clone().text());
        res = await send(second);
        assert.equal(res.status, 401);
        assert.equal(reasonOf(await res.text()), 'replayed');
      }
    } finally {
      for (const proc of procs) {
        proc.kill();
        if (proc.exitCode === null) await once(proc, 'exit');
      }
      await dropPrefix(p);
    }
  });
});
