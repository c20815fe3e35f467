// Replay protection: the NonceStore contract verify relies on, and a bounded
// in-memory store for a single process.

/**
 * Remembers the nonces of accepted signatures, so that `verify` can refuse a
 * replayed message. `verify` calls `remember` once per nonce, and only after
 * every signature of the message verified.
 *
 * `remember` records the pair (keyId, nonce) until `until` (inclusive) and
 * returns true, or returns false when the pair is already recorded: the
 * message is then refused as replayed. `created` is the signature's created
 * time, if it has one, for a store that may have forgotten pairs it once
 * held (a restart, a lost Redis) and must refuse what it cannot vouch for.
 * A store that cannot answer throws (or rejects): the verifier then fails
 * closed, and a server answers 503.
 * @typedef {object} NonceStore
 * @property {(keyId: string, nonce: string, created: Date | undefined, until: Date) => boolean | Promise<boolean>} remember
 */

// The capacity of a MemoryNonceStore made without maxEntries.
const DEFAULT_MAX_ENTRIES = 1 << 17;

// The longest keyid and nonce a MemoryNonceStore records (in UTF-16 code
// units). Signet's nonces have 22 characters; the bound keeps the memory of
// a full store proportional to its entry count.
const MAX_NONCE_LENGTH = 256;

// How many expired entries one call drops besides those it drops to make
// room: more than one, so that dropping outpaces adding; few, so that no
// call pays for a backlog.
const SWEEP_PER_CALL = 4;

/**
 * The error of a MemoryNonceStore that has no room for a new nonce (for the
 * store, or for this key's share of it). It is not a refusal of the message:
 * the verifier fails closed with it, and a server should answer 503.
 */
export class NonceStoreFullError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'NonceStoreFullError';
  }
}

/**
 * @typedef {object} MemoryNonceStoreOptions
 * @property {number} [maxEntries]  how many nonces the store holds at most
 *   (default 131,072: about 30 MB when full). Entries live until
 *   their signature can no longer pass the freshness check, so size it for
 *   the peak rate of signed requests times the acceptance window (maximum
 *   age plus a second), with headroom, times two: a single key may use half
 *   the store (see MemoryNonceStore).
 * @property {() => number | Date} [now]  the clock entries expire by, in
 *   milliseconds (default Date.now). Give it the verifier's clock when that
 *   is not the real one.
 */

/**
 * An in-memory NonceStore for one process: bounded, never dropping a live
 * entry to make room (that would let a replay through).
 *
 * Each key gets a fair share: a key may add a nonce only while it holds
 * fewer than the store has room left. One busy (or hostile) key therefore
 * holds at most half the store and can never lock the others out; k equally
 * busy keys hold about maxEntries / (k + 1) each; and a key that holds none
 * gets in until many keys together have filled the store. A nonce that
 * finds no room is refused with a NonceStoreFullError (fail closed);
 * keyids and nonces of more than 256 characters are refused with a
 * RangeError, so that the memory of a full store stays bounded.
 *
 * Expired entries are dropped a few at a time on each call, and all of them
 * before the store declares itself full.
 */
export class MemoryNonceStore {
  #max;
  #now;
  /** @type {Map<string, number>} pair → until, in ms */
  #until = new Map();
  /** @type {Map<string, number>} keyid → how many pairs it holds */
  #perKey = new Map();
  /** @type {Array<{ until: number, pair: string, keyId: string }>} min-heap on until */
  #heap = [];

  /** @param {MemoryNonceStoreOptions} [options] */
  constructor(options = {}) {
    const max = options.maxEntries === undefined ? DEFAULT_MAX_ENTRIES : options.maxEntries;
    if (!Number.isInteger(max) || max < 2) throw new TypeError('signet: maxEntries must be an integer of at least 2');
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('signet: now must be a function');
    this.#max = max;
    this.#now = options.now || Date.now;
  }

  /** How many entries the store holds, expired ones not yet dropped included. */
  get size() {
    return this.#until.size;
  }

  /**
   * Records (keyId, nonce) until `until` (inclusive); false if it is there
   * already. A time already past records nothing: no signature that old is
   * accepted anyway.
   * @param {string} keyId
   * @param {string} nonce
   * @param {Date | undefined} created  not used: the store forgets nothing it held
   * @param {Date} until
   * @returns {boolean}
   */
  remember(keyId, nonce, created, until) {
    if (typeof keyId !== 'string' || typeof nonce !== 'string') throw new TypeError('signet: keyId and nonce must be strings');
    if (keyId.length > MAX_NONCE_LENGTH || nonce.length > MAX_NONCE_LENGTH) {
      throw new RangeError(`signet: keyids and nonces longer than ${MAX_NONCE_LENGTH} characters are not recorded`);
    }
    const u = until instanceof Date ? until.getTime() : NaN;
    if (Number.isNaN(u)) throw new TypeError('signet: until must be a valid Date');
    const now = +this.#now();
    if (u < now) return true;
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    const pair = `${keyId.length}:${keyId}${nonce}`;
    this.#sweep(now, SWEEP_PER_CALL);
    const held = this.#until.get(pair);
    if (held !== undefined && held >= now) return false;
    if (held === undefined && !this.#hasRoom(keyId, now)) {
      throw new NonceStoreFullError(`signet: the nonce store has no room for this key (${this.#until.size} of ${this.#max} entries held)`);
    }
    // A pair that expired but is not dropped yet is recorded again; its old
    // heap entry goes stale and is skipped when it comes up.
    this.#until.set(pair, u);
    if (held === undefined) this.#perKey.set(keyId, (this.#perKey.get(keyId) || 0) + 1);
    this.#push({ until: u, pair, keyId });
    return true;
  }

  /**
   * Reports whether keyId may add a pair, dropping expired entries first if
   * that is what it takes. Never drops a live entry.
   * @param {string} keyId
   * @param {number} now
   */
  #hasRoom(keyId, now) {
    for (;;) {
      if ((this.#perKey.get(keyId) || 0) < this.#max - this.#until.size) return true;
      if (this.#heap.length === 0 || this.#heap[0].until >= now) return false;
      this.#drop();
    }
  }

  /**
   * @param {number} now
   * @param {number} max
   */
  #sweep(now, max) {
    for (let i = 0; i < max && this.#heap.length > 0 && this.#heap[0].until < now; i++) this.#drop();
  }

  // Removes the heap's first entry, and its pair unless the entry is stale.
  #drop() {
    const h = this.#heap;
    const e = h[0];
    if (this.#until.get(e.pair) === e.until) {
      this.#until.delete(e.pair);
      const n = /** @type {number} */ (this.#perKey.get(e.keyId)) - 1;
      if (n === 0) this.#perKey.delete(e.keyId);
      else this.#perKey.set(e.keyId, n);
    }
    const last = /** @type {typeof e} */ (h.pop());
    if (h.length > 0) {
      h[0] = last;
      this.#down(0);
    }
  }

  /** @param {{ until: number, pair: string, keyId: string }} e */
  #push(e) {
    const h = this.#heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].until <= e.until) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = e;
  }

  /** @param {number} i */
  #down(i) {
    const h = this.#heap;
    const e = h[i];
    for (;;) {
      let least = 2 * i + 1;
      if (least >= h.length) break;
      if (least + 1 < h.length && h[least + 1].until < h[least].until) least += 1;
      if (e.until <= h[least].until) break;
      h[i] = h[least];
      i = least;
    }
    h[i] = e;
  }
}
