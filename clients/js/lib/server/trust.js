// trustGateway: for a Node.js service behind a Signet gateway that signs
// what it forwards (upstream_signing). Requests are let through only with
// a valid gateway signature (label "signet", tag "signet-gateway",
// Ed25519, by a key the gateway publishes at /.well-known/signet-keys),
// fresh, with a nonce not seen before, covering the method, authority,
// path, query, content type, content (checked against Content-Digest),
// X-Request-Id and every X-Signet-* field of the request. The identity
// the gateway vouched for is then `req.signet` (null on a public route)
// and `req.signetGateway`; Go's middleware.TrustGateway does the same.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Reason, refuse } from '../errors.js';
import { MemoryNonceStore } from '../nonces.js';
import { GATEWAY_TAG } from '../response.js';
import { Identity, Verifier } from './verifier.js';

/** The label of a Signet gateway's signature on what it forwards. */
export const GATEWAY_LABEL = 'signet';
/** How old a gateway's signature may be by default, in seconds. */
export const DEFAULT_TRUST_MAX_AGE = 60;
/** How far in the future its created time may be by default, in seconds. */
export const DEFAULT_TRUST_CLOCK_SKEW = 5;
/** How often the key set is fetched again by default, in milliseconds. */
export const DEFAULT_KEYS_REFRESH = 5 * 60 * 1000;
/** The least time between two fetches by default, in milliseconds. */
export const DEFAULT_KEYS_MIN_INTERVAL = 1000;

// The most of a key set that is read.
const MAX_JWKS = 1 << 20;

/**
 * Options of trustGateway. Exactly one of jwksUrl, jwksFile and keys.
 * @typedef {object} TrustGatewayOptions
 * @property {string | URL} [jwksUrl]  the gateway's /.well-known/signet-keys:
 *   fetched at the first request, again every `refresh`, and when a
 *   signature names a key the set lacks (a rotated key), at most once
 *   every `minInterval` (a request that needs a fetch sooner waits for it)
 * @property {boolean} [allowHttp]  fetch jwksUrl over plain http from a host
 *   that is not a loopback address: only where nobody can come between the
 *   service and the gateway's admin listener (else https, a file, or keys)
 * @property {string} [jwksFile]  a file holding the published set, read at
 *   once (a bad file throws) and again as jwksUrl is fetched
 * @property {Record<string, import('../keys.js').KeyMaterial>} [keys]  pinned
 *   public keys by keyid (the key's RFC 7638 thumbprint)
 * @property {number} [refresh]  milliseconds; default 5 minutes
 * @property {number} [minInterval]  milliseconds; default 1000
 * @property {number} [timeout]  of a fetch, in milliseconds; default 5000
 * @property {(input: string | URL, init?: RequestInit) => Promise<Response>} [fetch]  default globalThis.fetch
 * @property {import('../nonces.js').NonceStore} [nonces]  default a MemoryNonceStore
 * @property {number} [maxAge]  seconds; default 60 (the gateway signs just before it forwards)
 * @property {number} [clockSkew]  seconds; default 5
 * @property {string} [label]  default "signet"
 * @property {string} [tag]  default "signet-gateway"
 * @property {number} [maxBodyBytes]
 * @property {number} [bodyBudget]
 * @property {string} [problemBase]
 * @property {string} [realm]
 * @property {(req: import('node:http').IncomingMessage, outcome: import('./verifier.js').Outcome) => void} [onOutcome]
 * @property {() => number | Date} [now]
 */

/**
 * What the gateway vouched for: `req.signetGateway` (`request.signetGateway` on Fastify).
 * @typedef {object} Vouched
 * @property {boolean} public  the gateway passed the request on unsigned (a public route): no identity
 * @property {string} keyId  the gateway's key
 * @property {string | undefined} requestId  the gateway's X-Request-Id
 * @property {number | undefined} created  of the gateway's signature, in Unix seconds
 */

/**
 * A published key, as the verifier's key source gives it.
 * @typedef {{ alg: 'ed25519', key: import('../keys.js').KeyMaterial, exp?: number }} GatewayKey
 */

/**
 * The RFC 7638 thumbprint of an Ed25519 public key, its keyid.
 * @param {string} x  base64url of the key
 */
function thumbprintOf(x) {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
}

/**
 * Reads a published JWK set into its Ed25519 keys by kid; other keys are
 * skipped, private ones refused, a kid must be the key's thumbprint.
 * @param {string} text
 * @returns {Map<string, GatewayKey>}
 */
export function parseGatewayKeys(text) {
  if (text.length > MAX_JWKS) throw new Error('signet: the key set is too large');
  const set = JSON.parse(text);
  if (!set || typeof set !== 'object' || !Array.isArray(set.keys)) throw new Error('signet: the key set has no keys member');
  /** @type {Map<string, GatewayKey>} */
  const out = new Map();
  for (const k of set.keys) {
    if (!k || typeof k !== 'object' || k.kty !== 'OKP' || k.crv !== 'Ed25519') continue;
    if (k.d !== undefined) throw new Error('signet: a published key is private');
    if (typeof k.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(k.x)) throw new Error('signet: a published key is malformed');
    const kid = thumbprintOf(k.x);
    if (k.kid !== undefined && k.kid !== kid) throw new Error(`signet: kid ${JSON.stringify(k.kid)} is not the key's thumbprint`);
    /** @type {GatewayKey} */
    const entry = { alg: 'ed25519', key: { kty: 'OKP', crv: 'Ed25519', x: k.x } };
    if (typeof k.exp === 'number' && k.exp > 0) entry.exp = k.exp;
    out.set(kid, entry);
  }
  return out;
}

/** The gateway's keys: pinned, or loaded from a file or URL and refreshed. */
class GatewayKeys {
  /** @type {Map<string, GatewayKey> | null} */
  #set = null;
  #fetched = 0;
  #tried = 0;
  /** @type {Promise<void> | null} */
  #loading = null;
  /** @type {(() => Promise<Map<string, GatewayKey>>) | null} */
  #load = null;
  #refresh;
  #minInterval;
  #now;

  /**
   * @param {TrustGatewayOptions} o
   * @param {() => number} now
   */
  constructor(o, now) {
    this.#now = now;
    this.#refresh = o.refresh === undefined ? DEFAULT_KEYS_REFRESH : o.refresh;
    this.#minInterval = o.minInterval === undefined ? DEFAULT_KEYS_MIN_INTERVAL : o.minInterval;
    const given = [o.jwksUrl, o.jwksFile, o.keys].filter((x) => x !== undefined).length;
    if (given !== 1) throw new TypeError('signet: trustGateway needs one of jwksUrl, jwksFile and keys');
    if (o.keys !== undefined) {
      this.#set = new Map(Object.entries(o.keys).map(([kid, key]) => [kid, { alg: 'ed25519', key }]));
    } else if (o.jwksFile !== undefined) {
      const file = o.jwksFile;
      this.#load = async () => parseGatewayKeys(readFileSync(file, 'utf8'));
      this.#set = parseGatewayKeys(readFileSync(file, 'utf8'));
      this.#fetched = this.#tried = now();
    } else {
      const url = String(o.jwksUrl);
      const u = new URL(url);
      const loopback = u.hostname === 'localhost' || /^127\./.test(u.hostname) || u.hostname === '[::1]';
      if (u.protocol !== 'https:' && !(u.protocol === 'http:' && (loopback || o.allowHttp === true))) {
        throw new TypeError(`signet: the gateway's keys at ${u.origin} would come over plain http, which whoever sits between could replace: use https, a jwksFile or pinned keys, or set allowHttp`);
      }
      const fetchFn = o.fetch || globalThis.fetch;
      const timeout = o.timeout || 5000;
      this.#load = async () => {
        const res = await fetchFn(url, { headers: { accept: 'application/jwk-set+json, application/json' }, signal: AbortSignal.timeout(timeout) });
        if (res.status !== 200) throw new Error(`signet: fetching the gateway's keys: ${res.status}`);
        const text = await res.text();
        return parseGatewayKeys(text);
      };
    }
  }

  /**
   * Loads the set again; concurrent callers share one load, and loads are
   * at most one every minInterval (the caller waits its turn).
   */
  #reload() {
    if (this.#loading) return this.#loading;
    const load = /** @type {() => Promise<Map<string, GatewayKey>>} */ (this.#load);
    this.#loading = (async () => {
      const wait = this.#tried === 0 ? 0 : this.#minInterval - (this.#now() - this.#tried);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.#tried = this.#now();
      try {
        this.#set = await load();
        this.#fetched = this.#tried;
      } finally {
        this.#loading = null;
      }
    })();
    return this.#loading;
  }

  /**
   * The key keyId names, for the verifier: null when the gateway does not
   * publish it; a key past its exp is refused; a set never loaded fails
   * closed (503).
   * @param {string} keyId
   * @returns {Promise<GatewayKey | null>}
   */
  async resolve(keyId) {
    if (this.#load) {
      if (this.#set === null || !this.#set.has(keyId)) {
        try {
          await this.#reload();
        } catch (err) {
          if (this.#set === null) throw err;
        }
      } else if (this.#now() - this.#fetched >= this.#refresh && !this.#loading) {
        this.#reload().catch(() => {}); // the set in hand keeps verifying
      }
    }
    const k = /** @type {Map<string, GatewayKey>} */ (this.#set).get(keyId);
    if (!k) return null;
    if (k.exp !== undefined && this.#now() >= k.exp * 1000) throw refuse(Reason.KeyExpired, 'the gateway no longer publishes this key');
    return k;
  }
}

/** @param {Map<string, string[]>} fields */
function hasContent(fields) {
  const cl = fields.get('content-length');
  return fields.has('content-digest') || fields.has('transfer-encoding') || (cl !== undefined && cl.some((v) => v.trim() !== '0'));
}

/**
 * The components a gateway's signature must cover on message: the default
 * profile, X-Request-Id, and every field that a stack could read as
 * X-Signet-* (any case, "_" for "-"): one the gateway did not sign is
 * refused (missing-component).
 * @param {import('../message.js').Message} message
 * @returns {string[]}
 */
function requiredOf(message) {
  const names = ['@method', '@authority', '@path'];
  if (message.kind === 'request' && message.query) names.push('@query');
  if (message.fields.has('content-type')) names.push('content-type');
  if (hasContent(message.fields)) names.push('content-digest');
  names.push('x-request-id');
  for (const name of message.fields.keys()) {
    if (name.replace(/_/g, '-').startsWith('x-signet-')) names.push(name);
  }
  return names;
}

/**
 * Turns what the inner verifier set (the gateway's identity) into what the
 * gateway vouched for.
 * @param {any} req  the request object the adapter decorates
 * @param {import('node:http').IncomingMessage} raw
 */
function vouch(req, raw) {
  const gw = /** @type {Identity} */ (req.signet);
  const h = raw.headers;
  const one = (/** @type {string} */ name) => {
    const v = h[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  const keyId = one('x-signet-key-id');
  /** @type {Vouched} */
  const v = { public: keyId === undefined, keyId: gw.keyId, requestId: one('x-request-id'), created: gw.created };
  req.signetGateway = v;
  if (keyId === undefined) {
    req.signet = null;
    return;
  }
  const scopes = one('x-signet-scopes');
  req.signet = new Identity({ keyId, owner: one('x-signet-owner'), scopes: scopes ? scopes.split(',') : [], alg: '', label: gw.label, created: gw.created });
}

/**
 * The verifier of a service behind a Signet gateway, with the adapters of
 * createVerifier: `middleware` (Express, Connect), `fastify`,
 * `handler(listener, { scopes })` (node:http), `verifyUpgrade`, and
 * `requireScopes(…)`, which checks the scopes the gateway vouched for.
 */
export class TrustGateway {
  #inner;

  /** @param {TrustGatewayOptions} options */
  constructor(options) {
    if (!options || typeof options !== 'object') throw new TypeError('signet: trustGateway needs options');
    const nowOpt = options.now || Date.now;
    const now = () => +nowOpt();
    const keys = new GatewayKeys(options, now);
    this.#inner = new Verifier({
      keys: (keyId) => keys.resolve(keyId),
      nonces: options.nonces || new MemoryNonceStore({ now }),
      policy: {
        label: options.label || GATEWAY_LABEL,
        tag: options.tag || GATEWAY_TAG,
        algorithms: ['ed25519'],
        maxAge: options.maxAge === undefined ? DEFAULT_TRUST_MAX_AGE : options.maxAge,
        clockSkew: options.clockSkew === undefined ? DEFAULT_TRUST_CLOCK_SKEW : options.clockSkew,
        requiredComponents: requiredOf,
      },
      maxBodyBytes: options.maxBodyBytes,
      bodyBudget: options.bodyBudget,
      problemBase: options.problemBase,
      realm: options.realm,
      onOutcome: options.onOutcome,
      now: options.now,
    });
    const inner = this.#inner;

    /**
     * Express (4 and 5) and Connect middleware; mount it before any body parser.
     * @param {any} req
     * @param {import('node:http').ServerResponse} res
     * @param {(err?: unknown) => void} next
     */
    this.middleware = (req, res, next) => {
      inner.middleware(req, res, (err) => {
        if (err === undefined) vouch(req, req);
        next(err);
      });
    };

    /**
     * The Fastify plugin: `fastify.register(trust.fastify)`.
     * @param {any} fastify
     * @param {unknown} opts
     * @param {(err?: Error) => void} done
     */
    const plugin = (fastify, opts, done) => {
      if (!fastify.hasRequestDecorator('signetGateway')) fastify.decorateRequest('signetGateway', null);
      inner.fastify(fastify, opts, (/** @type {Error | undefined} */ err) => {
        if (err) {
          done(err);
          return;
        }
        fastify.addHook('preParsing', async (/** @type {any} */ request, /** @type {any} */ _reply, /** @type {any} */ payload) => {
          if (request.signet && !request.signetGateway) vouch(request, request.raw);
          return payload;
        });
        done();
      });
    };
    this.fastify = Object.assign(plugin, {
      [Symbol.for('skip-override')]: true,
      [Symbol.for('fastify.display-name')]: '@signet/client/server trustGateway',
    });

    /**
     * Verifies a WebSocket upgrade: resolves to what the gateway vouched
     * for, or answers the refusal on the socket and resolves to null.
     * @param {import('node:http').IncomingMessage} req
     * @param {import('node:stream').Duplex} socket
     * @returns {Promise<Vouched | null>}
     */
    this.verifyUpgrade = async (req, socket) => {
      const id = await inner.verifyUpgrade(req, socket);
      if (!id) return null;
      vouch(req, req);
      return /** @type {any} */ (req).signetGateway;
    };
  }

  /**
   * Wraps a node:http request listener: it is called only for requests the
   * gateway signed (and whose vouched identity holds options.scopes), with
   * `req.signet`, `req.signetGateway` and `req.rawBody`.
   * @template {import('node:http').IncomingMessage} Req
   * @template {import('node:http').ServerResponse} Res
   * @param {(req: Req & { signet: Identity | null, signetGateway: Vouched, rawBody: Buffer | null }, res: Res) => unknown} listener
   * @param {{ scopes?: string[] }} [options]
   * @returns {(req: Req, res: Res) => Promise<void>}
   */
  handler(listener, options = {}) {
    const guard = this.#inner.requireScopes(...(options.scopes || []));
    return this.#inner.handler(async (req, res) => {
      const r = /** @type {any} */ (req);
      vouch(r, req);
      let pass = false;
      guard(r, res, () => { pass = true; });
      if (pass) await listener(r, res);
    });
  }

  /**
   * A guard, after the verifier, that answers 403 insufficient-scope
   * unless the identity the gateway vouched for holds every scope.
   * @param {...string} scopes
   * @returns {(req: any, res: any, next: (err?: unknown) => void) => void}
   */
  requireScopes(...scopes) {
    return this.#inner.requireScopes(...scopes);
  }
}

/**
 * Makes the verifier of a service behind a Signet gateway that signs what
 * it forwards (upstream_signing); see TrustGateway.
 * @param {TrustGatewayOptions} options
 */
export function trustGateway(options) {
  return new TrustGateway(options);
}
