// A NonceStore in Redis, through a client the application already has
// (node-redis 4 or later, or ioredis; a cluster client of either works
// too), with the same keys, script and semantics as the Go store
// (replay/redis): Node servers and Signet gateways that share a Redis and
// a prefix refuse each other's replays.

import { createHash } from 'node:crypto';

/** The key prefix of a RedisNonceStore made without one (the Go store's). */
export const DEFAULT_REDIS_PREFIX = 'signet:nonce:';

/** The timeout of one Redis call made without one, in milliseconds. */
export const DEFAULT_REDIS_TIMEOUT = 200;

// How many hash tags the keys are spread over, each with its sentinel.
const TAGS = 1024;
// Bytes of SHA-256 kept in a key.
const HASH_LEN = 16;
// Setting every sentinel may take longer than one call.
const INIT_TIMEOUT = 5000;

// Records a pair unless its signature was created before the horizon of
// its tag, setting the horizon first if the tag's sentinel is gone.
// Returns 0 if it recorded the pair, 1 if the pair was recorded already, 2
// if the signature is before the horizon, plus 4 if it found the sentinel
// gone. KEYS[1] is the sentinel, KEYS[2] the pair's key; ARGV[1] the
// created time in Unix milliseconds or "", ARGV[2] the time to live in
// milliseconds or 0 to look without recording, ARGV[3] the horizon to set.
// (The same script as the Go store's, byte for byte.)
const REMEMBER = `
local horizon = redis.call('GET', KEYS[1])
local lost = 0
if not horizon then
	horizon = ARGV[3]
	redis.call('SET', KEYS[1], horizon)
	lost = 4
end
if ARGV[1] == '' or tonumber(ARGV[1]) < tonumber(horizon) then
	return 2 + lost
end
if ARGV[2] == '0' then
	return redis.call('EXISTS', KEYS[2]) + lost
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
	return lost
end
return 1 + lost
`;

// Sets a sentinel that is missing; 1 if it did.
const SET_SENTINEL = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
	return 1
end
return 0
`;

const RECORDED = 0;
const REPLAYED = 1;
const UNVOUCHED = 2;
const LOST = 4;

/**
 * The parts of a Redis client this store uses: node-redis (4 and later)
 * has evalSha and eval with { keys, arguments }; ioredis has evalsha and
 * eval with a key count.
 * @typedef {{ evalSha: Function, eval: Function } | { evalsha: Function, eval: Function }} RedisClientLike
 */

/**
 * @typedef {object} RedisNonceStoreOptions
 * @property {string} [prefix]  starts every key; stores (and Signet
 *   gateways) must use the same one to see each other's nonces. Default
 *   "signet:nonce:", the gateway's
 * @property {number} [timeout]  bounds each call, in milliseconds; a call
 *   that takes longer fails, and the request gets 503. Default 200
 * @property {number} [maxSkew]  the verifier's clock skew, in seconds
 *   (default 30): after a loss, signatures created before the loss was
 *   found plus this are refused
 * @property {(horizon: Date) => void} [onLoss]  called when the store finds
 *   that Redis lost the nonces it held (or is new), with the time before
 *   which it now refuses signatures; log it
 * @property {() => number | Date} [now]  the clock, in milliseconds; default Date.now
 */

/**
 * @param {string} script
 */
function sha1(script) {
  return createHash('sha1').update(script).digest('hex');
}

/** @param {number} i */
function tagOf(i) {
  return i.toString(16).padStart(3, '0');
}

/**
 * A NonceStore in Redis, shared by every process that uses the same Redis
 * and prefix, Signet gateways included.
 *
 * Each (keyid, nonce) pair is one key written with SET NX PX inside a
 * script, so that only the first of any number of processes records it
 * and Redis drops it when its time is up: prefix, a hash tag, and 22
 * base64url characters of the SHA-256 of the keyid's length (8 bytes,
 * big-endian), the keyid and the nonce. Keys thus have a fixed size, carry
 * neither keyids nor nonces, and the 1,024 hash tags keep each script on
 * one slot of a Redis Cluster.
 *
 * A Redis that loses its data (restarted without persistence, failed over
 * to an empty replica, flushed) would let every request captured in the
 * last maximum age through again. The store notices: beside the pairs it
 * keeps a sentinel per hash tag that never expires and holds a horizon,
 * the earliest created time it vouches for; the script reads it and sets
 * the pair atomically, and a call that finds its sentinel gone sets it to
 * now plus maxSkew and refuses (as replayed) every signature created
 * before. So does a signature without a created time. On its first call
 * (or ready()) the store sets the sentinels that are missing with that
 * horizon: on a new Redis, requests are refused for maxSkew, unless
 * RedisNonceStore.prepare ran first, on the operator's word that the Redis
 * is new. Run Redis with appendonly yes and maxmemory-policy noeviction.
 *
 * A call that fails or takes longer than the timeout throws; the verifier
 * answers 503 (fail closed).
 */
export class RedisNonceStore {
  #client;
  #prefix;
  #timeout;
  #skewMs;
  #onLoss;
  #now;
  /** @type {string[]} */
  #sentinels = [];
  /** @type {Promise<number> | null} */
  #ready = null;
  #restoring = false;

  /**
   * @param {RedisClientLike} client  connected (node-redis: after connect())
   * @param {RedisNonceStoreOptions} [options]
   */
  constructor(client, options = {}) {
    this.#client = evaluator(client);
    this.#prefix = options.prefix || DEFAULT_REDIS_PREFIX;
    this.#timeout = options.timeout === undefined ? DEFAULT_REDIS_TIMEOUT : options.timeout;
    if (typeof this.#timeout !== 'number' || !(this.#timeout > 0)) throw new TypeError('signet: timeout must be a positive number of milliseconds');
    const skew = options.maxSkew === undefined ? 30 : options.maxSkew;
    if (typeof skew !== 'number' || !(skew >= 0)) throw new TypeError('signet: maxSkew must be a number of seconds, 0 or more');
    this.#skewMs = skew * 1000;
    this.#onLoss = options.onLoss;
    const now = options.now || Date.now;
    this.#now = () => +now();
    for (let i = 0; i < TAGS; i++) this.#sentinels.push(`${this.#prefix}{${tagOf(i)}}`);
  }

  /**
   * Sets the sentinels that are missing (the first call does it if this
   * was not called): await it at start-up to fail fast when Redis cannot
   * be reached. Resolves to how many it set; when that is not 0, Redis is
   * new or lost its data, and onLoss is called.
   * @returns {Promise<number>}
   */
  ready() {
    if (!this.#ready) {
      const horizon = this.#now() + this.#skewMs;
      this.#ready = this.#restore(horizon).then((n) => {
        if (n > 0 && this.#onLoss) this.#onLoss(new Date(horizon));
        return n;
      }, (err) => {
        this.#ready = null;
        throw err;
      });
    }
    return this.#ready;
  }

  /**
   * Prepares a Redis that has never held the nonces of this prefix, so
   * that stores vouch for every signature from the start: sets the
   * missing sentinels with no horizon, and resolves to how many it set.
   * Run it once, on a new Redis, before any store; run on a Redis that
   * lost its data, it would let the requests captured before the loss
   * through again.
   * @param {RedisClientLike} client
   * @param {{ prefix?: string }} [options]
   * @returns {Promise<number>}
   */
  static prepare(client, options = {}) {
    const store = new RedisNonceStore(client, { prefix: options.prefix });
    return store.#restore(0);
  }

  /**
   * Records (keyId, nonce) until `until` and resolves to true, or to false
   * when the pair is recorded already, or when created is missing or
   * before the store's horizon (it may have forgotten the pair). Rejects
   * when Redis does not answer in time: the pair may or may not be
   * recorded.
   * @param {string} keyId
   * @param {string} nonce
   * @param {Date | undefined} created
   * @param {Date} until
   * @returns {Promise<boolean>}
   */
  async remember(keyId, nonce, created, until) {
    if (typeof keyId !== 'string' || typeof nonce !== 'string') throw new TypeError('signet: keyId and nonce must be strings');
    const u = until instanceof Date ? until.getTime() : NaN;
    if (Number.isNaN(u)) throw new TypeError('signet: until must be a valid Date');
    await this.ready();
    const now = this.#now();
    const ttl = u - now;
    const ttlMs = ttl >= 0 ? String(Math.trunc(ttl) + 1) : '0';
    const createdMs = created instanceof Date && !Number.isNaN(created.getTime()) ? String(created.getTime()) : '';
    const horizon = now + this.#skewMs;
    const { key, tag } = this.#key(keyId, nonce);
    const res = Number(await this.#eval(REMEMBER, [this.#sentinels[tag], key], [createdMs, ttlMs, String(horizon)], this.#timeout));
    if (res & LOST) this.#lost(horizon);
    switch (res & ~LOST) {
      case RECORDED:
        return true;
      case REPLAYED:
      case UNVOUCHED:
        return false;
      default:
        throw new Error(`signet: Redis answered the nonce script with ${res}`);
    }
  }

  /**
   * The key of a pair and its tag, as the Go store makes them.
   * @param {string} keyId
   * @param {string} nonce
   */
  #key(keyId, nonce) {
    const k = Buffer.from(keyId, 'utf8');
    const n = Buffer.from(nonce, 'utf8');
    const buf = Buffer.allocUnsafe(8 + k.length + n.length);
    buf.writeBigUInt64BE(BigInt(k.length), 0);
    k.copy(buf, 8);
    n.copy(buf, 8 + k.length);
    const sum = createHash('sha256').update(buf).digest();
    const tag = sum.readUInt16BE(HASH_LEN) % TAGS;
    return { key: this.#sentinels[tag] + sum.subarray(0, HASH_LEN).toString('base64url'), tag };
  }

  /**
   * Sets every missing sentinel to horizon; resolves to how many it set.
   * @param {number} horizon
   */
  async #restore(horizon) {
    const value = String(horizon);
    const set = await Promise.all(this.#sentinels.map((s) => this.#eval(SET_SENTINEL, [s], [value], INIT_TIMEOUT)));
    return set.reduce((n, x) => n + Number(x), 0);
  }

  /**
   * After a call found a sentinel gone, sets the others again (a loss
   * seldom takes one alone) and reports the loss, once, in the background.
   * @param {number} horizon
   */
  #lost(horizon) {
    if (this.#restoring) return;
    this.#restoring = true;
    this.#restore(horizon).catch(() => {
      // The calls that need a missing sentinel set it themselves.
    }).finally(() => {
      this.#restoring = false;
      if (this.#onLoss) this.#onLoss(new Date(horizon));
    });
  }

  /**
   * Runs a script (by its SHA-1, loading it when Redis does not have it)
   * within ms milliseconds.
   * @param {string} script
   * @param {string[]} keys
   * @param {string[]} args
   * @param {number} ms
   */
  async #eval(script, keys, args, ms) {
    const run = async () => {
      try {
        return await this.#client.evalsha(SHAS.get(script), keys, args);
      } catch (err) {
        if (!String(err && err.message).startsWith('NOSCRIPT')) throw err;
        return this.#client.eval(script, keys, args);
      }
    };
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`signet: Redis did not answer within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([run(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const SHAS = new Map([REMEMBER, SET_SENTINEL].map((s) => [s, sha1(s)]));

/**
 * The scripting calls of a node-redis or ioredis client, in one shape.
 * @param {any} client
 * @returns {{ evalsha: (sha: string | undefined, keys: string[], args: string[]) => Promise<unknown>, eval: (script: string, keys: string[], args: string[]) => Promise<unknown> }}
 */
function evaluator(client) {
  if (client && typeof client.evalSha === 'function' && typeof client.eval === 'function') {
    return {
      evalsha: (sha, keys, args) => client.evalSha(sha, { keys, arguments: args }),
      eval: (script, keys, args) => client.eval(script, { keys, arguments: args }),
    };
  }
  if (client && typeof client.evalsha === 'function' && typeof client.eval === 'function') {
    return {
      evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
      eval: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args),
    };
  }
  throw new TypeError('signet: RedisNonceStore needs a node-redis (4 or later) or ioredis client');
}
