// Test helpers for Redis: clients of each kind on the shared Redis at
// 127.0.0.1:6379 (or SIGNET_REDIS_URL), a key prefix of the test's own
// that is removed at the end, and a proxy that can stop answering.

import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { createClient as createClient4 } from 'redis4';
import Redis from 'ioredis';

export const REDIS_URL = process.env.SIGNET_REDIS_URL || 'redis://127.0.0.1:6379';

/**
 * Reports why Redis cannot be used, or '' when it can. Under CI=true a
 * missing Redis is an error, not a reason to skip.
 */
export async function redisMissing() {
  const { hostname, port } = new URL(REDIS_URL);
  const ok = await new Promise((resolve) => {
    const s = net.connect(Number(port || 6379), hostname, () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  if (ok) return '';
  if (process.env.CI === 'true') throw new Error(`Redis is not reachable at ${REDIS_URL} (CI=true requires it)`);
  return `Redis is not reachable at ${REDIS_URL}`;
}

/** A prefix no other test uses. */
export function testPrefix() {
  return `signet-js-test:${randomBytes(6).toString('hex')}:`;
}

/**
 * The kinds of client RedisNonceStore takes, each connected to url.
 * @param {string} [url]
 */
export const clientKinds = {
  'node-redis': async (url = REDIS_URL) => {
    const c = createClient({ url, socket: { reconnectStrategy: 50 } });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: () => c.destroy() };
  },
  'node-redis 4': async (url = REDIS_URL) => {
    const c = createClient4({ url, socket: { reconnectStrategy: () => 50 } });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: () => c.disconnect() };
  },
  ioredis: async (url = REDIS_URL) => {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => 50 });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: () => c.disconnect() };
  },
};

/**
 * Deletes every key under prefix.
 * @param {string} prefix
 */
export async function dropPrefix(prefix) {
  const c = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await c.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    c.disconnect();
  }
}

/**
 * A TCP proxy to Redis on 127.0.0.1 that can stop passing anything on
 * (a hung Redis, without hanging the shared one).
 */
export async function hangingProxy() {
  const { hostname, port } = new URL(REDIS_URL);
  let hung = false;
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port || 6379), hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d) => { if (!hung) upstream.write(d); });
    upstream.on('data', (d) => { if (!hung) client.write(d); });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const p = /** @type {net.AddressInfo} */ (server.address()).port;
  return {
    url: `redis://127.0.0.1:${p}`,
    hang: () => { hung = true; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve(undefined));
    }),
  };
}
