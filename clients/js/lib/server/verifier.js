// The server side: a verifier that checks the signatures of requests to a
// Node.js server as the Go middleware does (middleware.Verify), with
// adapters for Express and Connect, Fastify, node:http and WebSocket
// upgrades.
//
// Order of work, for each request: the target, the Host and the framing
// (no fragment, origin form, one plain Host, no trailers); the signatures
// and the nonce, before any of the body is read (they cover
// Content-Digest, not the body); covered fields a proxy would remove, and
// repeated ones; then the body, under a size limit and a budget of bytes
// held at once; then the body against Content-Digest. Only then is the
// request passed on, its body intact and the caller's Identity on it.

import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { parseComponent } from '../components.js';
import { Reason, SignatureError } from '../errors.js';
import { Key } from '../keys.js';
import { requestMessage, toMessage } from '../message.js';
import { DEFAULT_REQUIRED_PARAMS, verifyHeader } from '../verify.js';
import { Budget, declaredLength, readBody } from './body.js';
import { checkContentDigest, verifySignature } from './crypto.js';
import { DEFAULT_PROBLEM_BASE, STATUS_TEXT, ServerReason, acceptSignature, problemOf, problemResponse, refusal } from './problem.js';
import { coveredHopByHop, combineCovered, fieldLines, validHost } from './request.js';
import { isVerifyApi } from './verify-api.js';

/** The body size limit of a verifier made without maxBodyBytes: 10 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 10 << 20;

/** The body budget of a verifier made without bodyBudget: 64 MiB. */
export const DEFAULT_BODY_BUDGET = 64 << 20;

/**
 * A key as a server's key source gives it: a Key, or key material with its
 * algorithm, and optionally whom it belongs to and what it may do, for
 * the Identity.
 * @typedef {import('../keys.js').Key | { alg?: import('../keys.js').Algorithm, key: import('../keys.js').KeyMaterial, owner?: string, scopes?: readonly string[] }} ServerKey
 */

/**
 * Finds the key of a keyid: a ServerKey, or null or undefined when there
 * is none (unknown-key). To refuse a key with a reason, throw a
 * SignatureError (key-revoked, key-expired); any other error means the
 * key store cannot answer, and the request gets 503 (fail closed).
 * Return the same object for the same key (or a Key) where you can: the
 * material of `{ alg, key }` is imported once per object.
 * @callback ServerKeyResolver
 * @param {string} keyId
 * @param {{ label: string, alg: string | undefined, params: import('../signatures.js').SignatureParams }} info
 * @returns {ServerKey | null | undefined | Promise<ServerKey | null | undefined>}
 */

/**
 * What a signature must be, beyond valid: the policy of verify.
 * @typedef {object} ServerPolicy
 * @property {string[] | ((message: import('../message.js').Message) => string[])} [requiredComponents]
 *   default: Signet's default profile for the request
 * @property {string[]} [requiredParams]  default ["created", "keyid", "nonce"]
 * @property {number | null} [maxAge]  seconds; default 300
 * @property {number} [clockSkew]  seconds; default 30
 * @property {import('../keys.js').Algorithm[]} [algorithms]  if set, the only ones accepted
 * @property {string | string[]} [label]  check only these signatures
 * @property {string} [tag]  check only signatures with this tag
 * @property {Record<string, import('../sf.js').FieldType>} [structuredFields]
 */

/**
 * Options of createVerifier. Only `keys` is required (and `nonces`, unless
 * the policy requires no nonce or the keys are a verifyApi).
 * @typedef {object} VerifierOptions
 * @property {ServerKeyResolver | Map<string, ServerKey> | Record<string, ServerKey> | import('./verify-api.js').VerifyApi} keys
 *   where keys come from: a function of the keyid, a table, or
 *   verifyApi(…), which hands the whole check to a Signet gateway
 * @property {import('../nonces.js').NonceStore | false} [nonces]  replay
 *   protection: a MemoryNonceStore (one process) or a RedisNonceStore
 *   (shared); false only with a policy whose requiredParams leave out
 *   "nonce". Not used with verifyApi, whose gateway keeps the nonces.
 * @property {ServerPolicy} [policy]
 * @property {number} [maxBodyBytes]  bodies over this get 413; default 10 MiB
 * @property {number} [bodyBudget]  the body bytes all requests may hold in
 *   memory at once, from their declared length (or as they arrive) until
 *   the response is done; past it, 503 with Retry-After. Default 64 MiB,
 *   never less than maxBodyBytes
 * @property {string} [problemBase]  prefix of problem types; default https://signet.dev/problems/
 * @property {string} [realm]  of WWW-Authenticate; default "signet"
 * @property {string | ((req: import('node:http').IncomingMessage) => string)} [scheme]
 *   the scheme clients used; default from the connection (https when it is
 *   TLS). Set "https" behind a TLS-terminating proxy.
 * @property {string | ((req: import('node:http').IncomingMessage) => string)} [authority]
 *   the authority clients addressed, instead of the Host field: behind a
 *   proxy that rewrites Host, from its X-Forwarded-Host, and only when the
 *   request came through that proxy (check req.socket.remoteAddress)
 * @property {boolean} [debug]  adds the signature base the server built to
 *   bad-signature refusals, so that a client developer can compare it with
 *   theirs. It tells callers what the server would accept: never in
 *   production
 * @property {(req: import('node:http').IncomingMessage, outcome: Outcome) => void} [onOutcome]
 *   called once per request, for logs and metrics
 * @property {() => number | Date} [now]  the clock, in milliseconds; default Date.now
 */

/**
 * What became of one request, for onOutcome.
 * @typedef {object} Outcome
 * @property {number} status  0 when the request was passed on
 * @property {string} [reason]  the reason code of a refusal
 * @property {string} [keyId]  the keyid concerned, when one was read
 * @property {unknown} [error]  the cause of a refusal or a 503 (for logs; never sent)
 * @property {number} elapsed  milliseconds spent verifying and reading the body
 */

/**
 * The authenticated caller of a request: `req.signet` (Express, node:http),
 * `request.signet` (Fastify), or what verifyUpgrade resolves to.
 */
export class Identity {
  /**
   * @param {{ keyId: string, owner?: string, scopes?: readonly string[], alg: string, label: string, created?: number }} f
   */
  constructor(f) {
    /** The keyid of the verified signature. */
    this.keyId = f.keyId;
    /** Whom the key belongs to, when the key source says. */
    this.owner = f.owner;
    /** @type {readonly string[]} */
    this.scopes = Object.freeze([...(f.scopes || [])]);
    /** The algorithm the key is bound to. */
    this.alg = f.alg;
    /** The label of the verified signature. */
    this.label = f.label;
    /** Its created time, in Unix seconds. */
    this.created = f.created;
    Object.freeze(this);
  }

  /**
   * Reports whether the identity holds scope.
   * @param {string} scope
   */
  hasScope(scope) {
    return this.scopes.includes(scope);
  }
}

// Marks a request whose 100 Continue is the verifier's to send.
const kContinue = Symbol('signet.expectContinue');

/**
 * @typedef {object} Head
 * @property {Identity} identity
 * @property {string | undefined} contentDigest
 * @property {string} label
 * @property {number} start
 */

/** @typedef {import('./problem.js').Refusal} Refusal */

/**
 * @param {unknown} x
 * @returns {x is Refusal}
 */
function isRefusal(x) {
  return x !== null && typeof x === 'object' && typeof (/** @type {any} */ (x).status) === 'number' && typeof (/** @type {any} */ (x).reason) === 'string' && !(x instanceof Error);
}

/** @param {string} reason */
const statusOf = (reason) => (reason === Reason.InsufficientScope ? 403 : 401);

/**
 * A configured verifier and its adapters. Make one per application with
 * createVerifier; it is safe to share among all requests.
 */
export class Verifier {
  #keys;
  /** @type {import('./verify-api.js').VerifyApi | null} */
  #api = null;
  /** @type {import('../nonces.js').NonceStore | false} */
  #nonces = false;
  /** @type {ServerPolicy} */
  #policy;
  #maxBody;
  #budget;
  #problemBase;
  #realm;
  #scheme;
  #authority;
  #debug;
  #onOutcome;
  #now;

  /** @param {VerifierOptions} options */
  constructor(options) {
    if (!options || typeof options !== 'object') throw new TypeError('signet: createVerifier needs options');
    const { keys } = options;
    if (isVerifyApi(keys)) {
      if (options.nonces !== undefined || options.policy !== undefined) {
        throw new TypeError('signet: with verifyApi, the gateway applies its own policy and keeps the nonces: give neither policy nor nonces');
      }
      this.#api = keys;
    } else if (!(typeof keys === 'function' || keys instanceof Map || (keys !== null && typeof keys === 'object'))) {
      throw new TypeError('signet: createVerifier needs keys: a function of the keyid, a Map or object of keys, or verifyApi(…)');
    }
    this.#keys = keys;
    this.#policy = { ...(options.policy || {}) };
    if (!this.#api) {
      const required = this.#policy.requiredParams || DEFAULT_REQUIRED_PARAMS;
      const nonces = options.nonces;
      if (nonces === false) {
        if (required.includes('nonce')) throw new TypeError('signet: nonces: false needs a policy that does not require a nonce (requiredParams without "nonce")');
      } else if (!nonces || typeof nonces.remember !== 'function') {
        throw new TypeError('signet: createVerifier needs a nonce store (nonces: new MemoryNonceStore() or a RedisNonceStore); replay protection is not optional');
      } else {
        this.#nonces = nonces;
      }
    }
    this.#maxBody = positive(options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes');
    this.#budget = new Budget(Math.max(positive(options.bodyBudget, DEFAULT_BODY_BUDGET, 'bodyBudget'), this.#maxBody));
    this.#problemBase = options.problemBase || DEFAULT_PROBLEM_BASE;
    this.#realm = options.realm || 'signet';
    this.#scheme = options.scheme;
    this.#authority = options.authority;
    this.#debug = options.debug === true;
    this.#onOutcome = options.onOutcome;
    const now = options.now || Date.now;
    this.#now = () => +now();
    if (this.#debug) {
      process.emitWarning('debug mode is on: refusals show clients the signature base the server expects; never use it in production', { code: 'SIGNET_DEBUG' });
    }

    // Bound once, so that they can be handed around as they are.
    this.middleware = this.middleware.bind(this);
    this.fastify = Object.assign(this.#fastifyPlugin.bind(this), {
      [Symbol.for('skip-override')]: true,
      [Symbol.for('fastify.display-name')]: '@signet/client/server',
    });
    this.verifyUpgrade = this.verifyUpgrade.bind(this);
  }

  /** The body bytes the verifier's requests may still take. */
  get bodyBudgetLeft() {
    return this.#budget.left;
  }

  /**
   * Express (4 and 5) and Connect middleware: passes on only requests
   * whose signatures verify, with `req.signet` (the Identity) and
   * `req.rawBody` (a Buffer, or null when there is no body), the body back
   * in the request stream for the parsers that follow. Verifies
   * req.originalUrl, the target as the client sent it, wherever the
   * middleware is mounted. Mount it before any body parser.
   * @param {import('node:http').IncomingMessage & { originalUrl?: string, signet?: Identity, rawBody?: Buffer | null }} req
   * @param {import('node:http').ServerResponse} res
   * @param {(err?: unknown) => void} next
   */
  middleware(req, res, next) {
    this.#run(req, res, req.originalUrl || /** @type {string} */ (req.url)).then((ok) => {
      if (ok) next();
    }, next);
  }

  /**
   * Wraps a node:http request listener: it is called only for requests
   * whose signatures verify (and that hold options.scopes), with
   * `req.signet` and `req.rawBody`, the body back in the request stream.
   * @template {import('node:http').IncomingMessage} Req
   * @template {import('node:http').ServerResponse} Res
   * @param {(req: Req & { signet: Identity, rawBody: Buffer | null }, res: Res) => unknown} listener
   * @param {{ scopes?: string[] }} [options]
   * @returns {(req: Req, res: Res) => Promise<void>}
   */
  handler(listener, options = {}) {
    const scopes = options.scopes || [];
    return async (req, res) => {
      const r = /** @type {Req & { signet: Identity, rawBody: Buffer | null }} */ (req);
      let ok;
      try {
        ok = await this.#run(r, res, /** @type {string} */ (req.url));
      } catch (err) {
        // A fault of the set-up, not of the request: no unhandled rejection.
        this.#send(res, { status: 500, headers: { 'Content-Length': '0' }, body: '' });
        this.#observe(req, { status: 500, error: err, elapsed: 0 });
        return;
      }
      if (!ok) return;
      if (!this.#scopesOk(r, res, scopes)) return;
      await listener(r, res);
    };
  }

  /**
   * A checkContinue listener (server.on('checkContinue', …)) around the
   * server's request listener: the 100 Continue a client waits for is then
   * sent only once its signatures verified, so that nobody sends a body
   * that will not be read. Without it, node:http answers 100 Continue at
   * once.
   * @template {(req: any, res: any) => any} L
   * @param {L} listener
   * @returns {L}
   */
  checkContinue(listener) {
    return /** @type {L} */ ((req, res) => {
      req[kContinue] = true;
      return listener(req, res);
    });
  }

  /**
   * Verifies a WebSocket (or other) upgrade request, for the 'upgrade'
   * event of a node:http server, before `ws`'s handleUpgrade: resolves to
   * the Identity, or answers the refusal on the socket, closes it, and
   * resolves to null. An upgrade request with a body is refused.
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:stream').Duplex} socket
   * @param {{ scopes?: string[] }} [options]
   * @returns {Promise<Identity | null>}
   */
  async verifyUpgrade(req, socket, options = {}) {
    const start = performance.now();
    /** @type {Identity} */
    let id;
    try {
      if (declaredLength(req) !== 0) throw refusal(400, ServerReason.BadBody, 'an upgrade request cannot carry a body', { unread: true });
      ({ identity: id } = await this.#head(req, /** @type {string} */ (req.url), start));
      const missing = (options.scopes || []).find((s) => !id.hasScope(s));
      if (missing !== undefined) throw this.#scopeRefusal(missing);
    } catch (err) {
      const r = this.#asRefusal(err);
      const { status, headers, body } = this.#response(req, /** @type {string} */ (req.url), r);
      let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] || ''}\r\n`;
      for (const [k, v] of Object.entries({ ...headers, Connection: 'close' })) head += `${k}: ${v}\r\n`;
      if (!socket.destroyed) socket.end(`${head}\r\n${body}`, 'latin1');
      this.#observe(req, { status, reason: r.reason, keyId: r.keyId, error: r.error, elapsed: performance.now() - start });
      return null;
    }
    /** @type {any} */ (req).signet = id;
    this.#observe(req, { status: 0, keyId: id.keyId, elapsed: performance.now() - start });
    return id;
  }

  /**
   * A guard, after the verifier, that answers 403 insufficient-scope unless
   * the identity holds every scope: Express or Connect middleware, and a
   * Fastify preHandler or onRequest hook alike.
   * @param {...string} scopes
   * @returns {(req: any, res: any, next: (err?: unknown) => void) => void}
   */
  requireScopes(...scopes) {
    return (req, res, next) => {
      // A Fastify reply has a raw response; an Express one is one.
      if (res && typeof res.code === 'function' && res.raw) {
        const missing = scopes.find((s) => !(req.signet && req.signet.hasScope(s)));
        if (missing === undefined) {
          next();
          return;
        }
        const { status, headers, body } = this.#response(req.raw, req.raw.url, this.#scopeRefusal(missing));
        res.code(status).headers(headers).send(Buffer.from(body));
        return;
      }
      if (this.#scopesOk(req, res, scopes)) next();
    };
  }

  /**
   * @param {any} req
   * @param {import('node:http').ServerResponse} res
   * @param {readonly string[]} scopes
   */
  #scopesOk(req, res, scopes) {
    const missing = scopes.find((s) => !(req.signet && req.signet.hasScope(s)));
    if (missing === undefined) return true;
    this.#send(res, this.#response(req, req.url, this.#scopeRefusal(missing)));
    return false;
  }

  /** @param {string} scope */
  #scopeRefusal(scope) {
    return refusal(403, Reason.InsufficientScope, `this needs the scope ${JSON.stringify(scope)}`);
  }

  /**
   * The Fastify plugin: register it (`fastify.register(verifier.fastify)`)
   * where its routes are, before other plugins that read the body. It
   * applies to the context it is registered in and those below (it does
   * not make a context of its own). Requests get `request.signet` and
   * `request.rawBody`; the body is handed to the content-type parsers as
   * it came.
   * @param {any} fastify
   * @param {unknown} _opts
   * @param {(err?: Error) => void} done
   */
  #fastifyPlugin(fastify, _opts, done) {
    if (!fastify.hasRequestDecorator('signet')) fastify.decorateRequest('signet', null);
    if (!fastify.hasRequestDecorator('rawBody')) fastify.decorateRequest('rawBody', null);
    /** @type {WeakMap<object, Head>} */
    const heads = new WeakMap();
    fastify.addHook('onRequest', async (/** @type {any} */ request, /** @type {any} */ reply) => {
      const start = performance.now();
      const target = request.originalUrl || request.raw.url;
      try {
        heads.set(request, await this.#head(request.raw, target, start));
      } catch (err) {
        if (!isRefusal(err)) throw err;
        return this.#replyRefusal(request, reply, target, err, start);
      }
      return undefined;
    });
    fastify.addHook('preParsing', async (/** @type {any} */ request, /** @type {any} */ reply, /** @type {any} */ payload) => {
      const head = heads.get(request);
      if (!head) return payload;
      heads.delete(request);
      const target = request.originalUrl || request.raw.url;
      let body;
      try {
        body = await this.#body(request.raw, reply.raw, head, false);
      } catch (err) {
        if (!isRefusal(err)) throw err;
        return this.#replyRefusal(request, reply, target, err, head.start);
      }
      request.signet = head.identity;
      request.rawBody = body;
      this.#observe(request.raw, { status: 0, keyId: head.identity.keyId, elapsed: performance.now() - head.start });
      if (body === null || body.length === 0) return payload;
      const stream = Readable.from([body], { objectMode: false });
      // What Fastify compares with Content-Length.
      return Object.assign(stream, { receivedEncodedLength: body.length });
    });
    done();
  }

  /**
   * @param {any} request
   * @param {any} reply
   * @param {string} target
   * @param {Refusal} r
   * @param {number} start
   */
  #replyRefusal(request, reply, target, r, start) {
    const { status, headers, body } = this.#response(request.raw, target, r);
    this.#observe(request.raw, { status, reason: r.reason, keyId: r.keyId, error: r.error, elapsed: performance.now() - start });
    // A Buffer: Fastify would add a charset to the type of a string.
    return reply.code(status).headers(headers).send(Buffer.from(body));
  }

  /**
   * Verifies req and, when it passes, sets req.signet and req.rawBody and
   * puts the body back; otherwise answers the refusal. Resolves to whether
   * the request passed; rejects only for a fault of the server's set-up.
   * @param {any} req
   * @param {import('node:http').ServerResponse} res
   * @param {string} target
   */
  async #run(req, res, target) {
    const start = performance.now();
    try {
      const head = await this.#head(req, target, start);
      const body = await this.#body(req, res, head, true);
      req.signet = head.identity;
      req.rawBody = body;
      this.#observe(req, { status: 0, keyId: head.identity.keyId, elapsed: performance.now() - start });
      return true;
    } catch (err) {
      if (!isRefusal(err)) throw err;
      const r = err;
      const resp = this.#response(req, target, r);
      this.#send(res, resp);
      this.#observe(req, { status: resp.status, reason: r.reason, keyId: r.keyId, error: r.error, elapsed: performance.now() - start });
      return false;
    }
  }

  /**
   * Everything before the body: the request's framing, the signatures, the
   * nonces, and the covered fields. Throws a Refusal.
   * @param {import('node:http').IncomingMessage} req
   * @param {string} target
   * @param {number} start
   * @returns {Promise<Head>}
   */
  async #head(req, target, start) {
    const lines = fieldLines(req.rawHeaders);
    if (target.includes('#')) {
      // The signature covers the target up to the '#'; Node's routers act
      // on more (and resolve "/x#/../admin" to "/admin").
      throw refusal(400, ServerReason.InvalidTarget, 'the request target has a fragment (#), which a request target never carries (RFC 9112 §3.2)', { unread: true });
    }
    if (!(target.startsWith('/') || (target === '*' && req.method === 'OPTIONS'))) {
      throw refusal(400, ServerReason.InvalidTarget, 'the request target must be in origin form (/path?query): the application would not route on what the signature covers', { unread: true });
    }
    const hosts = lines.get('host') || [];
    const authority = this.#authority === undefined ? hosts[0] : typeof this.#authority === 'function' ? this.#authority(req) : this.#authority;
    if (this.#authority === undefined && hosts.length !== 1) {
      throw refusal(400, ServerReason.InvalidHost, 'the request must have exactly one Host field', { unread: true });
    }
    if (typeof authority !== 'string' || authority === '' || !validHost(authority)) {
      throw refusal(400, ServerReason.InvalidHost, 'the Host field must be a host name or IP address and an optional port, without a zone or percent-encoding', { unread: true });
    }
    if (lines.has('trailer') && lines.has('transfer-encoding')) throw trailersRefusal(true);
    const declared = declaredLength(req);
    const scheme = this.#schemeOf(req);
    const fields = this.#authority === undefined ? lines : new Map(lines).set('host', [authority]);

    let identity;
    let contentDigest;
    let covered;
    try {
      ({ identity, contentDigest, covered } = this.#api
        ? await this.#remote(req, target, authority, scheme, declared !== 0)
        : await this.#local(req, target, scheme, fields, declared !== 0));
    } catch (err) {
      throw this.#asRefusal(err);
    }
    const hop = coveredHopByHop(lines, covered);
    if (hop) {
      throw refusal(400, ServerReason.HopByHop, `the signature covers ${JSON.stringify(hop)}, which the Connection field (or HTTP itself) makes hop-by-hop: a proxy would remove it`, { keyId: identity.keyId, unread: true });
    }
    const bad = combineCovered(/** @type {any} */ (req.headers), lines, covered);
    if (bad) {
      throw refusal(400, ServerReason.InvalidField, `the covered field ${JSON.stringify(bad)} has several lines, the last one empty: the value they make cannot be passed on as one line`, { keyId: identity.keyId, unread: true });
    }
    return { identity, contentDigest, label: identity.label, start };
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {string} target
   * @param {string} scheme
   * @param {Map<string, string[]>} fields  lower-cased names (node:http checked them)
   * @param {boolean} hasContent
   */
  async #local(req, target, scheme, fields, hasContent) {
    let message;
    try {
      message = requestMessage(req.method, target, fields, undefined, 'plain', null, { scheme });
    } catch (err) {
      throw refusal(400, ServerReason.InvalidHost, err.message.replace(/^signet: /, ''), { unread: true, error: err });
    }
    /** @type {Map<string, object>} */
    const entries = new Map();
    const source = this.#keys;
    /** @type {import('../verify.js').KeyResolver} */
    const keys = async (keyId, info) => {
      let e;
      if (typeof source === 'function') e = await source(keyId, info);
      else if (source instanceof Map) e = await source.get(keyId);
      else e = Object.prototype.hasOwnProperty.call(source, keyId) ? await /** @type {any} */ (source)[keyId] : undefined;
      if (e && typeof e === 'object' && !(e instanceof Key)) entries.set(keyId, e);
      return e;
    };
    const p = this.#policy;
    const res = await verifyHeader(message, {
      keys,
      nonces: this.#nonces,
      requiredComponents: p.requiredComponents,
      requiredParams: p.requiredParams,
      maxAge: p.maxAge,
      clockSkew: p.clockSkew,
      algorithms: p.algorithms,
      label: p.label,
      tag: p.tag,
      structuredFields: p.structuredFields,
      now: new Date(this.#now()),
      debug: this.#debug,
    }, hasContent, { verifySignature });
    const first = res.signatures[0];
    const e = /** @type {{ owner?: string, scopes?: readonly string[] } | undefined} */ (entries.get(first.keyId));
    const identity = new Identity({ keyId: first.keyId, owner: e && e.owner, scopes: e && e.scopes, alg: first.alg, label: first.label, created: first.created });
    return { identity, contentDigest: res.contentDigest, covered: res.covered };
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {string} target
   * @param {string} authority
   * @param {string} scheme
   * @param {boolean} hasContent
   */
  async #remote(req, target, authority, scheme, hasContent) {
    /** @type {[string, string][]} */
    const headers = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    const api = /** @type {import('./verify-api.js').VerifyApi} */ (this.#api);
    const v = await api.verify({ method: /** @type {string} */ (req.method), target, authority, scheme, headers, has_content: hasContent });
    if (!v.verified) {
      throw refusal(v.status, v.reason, v.problem.detail || '', {
        label: v.problem.signature,
        keyId: v.key_id,
        base: this.#debug ? v.problem.signature_base : undefined,
        acceptSignature: v.accept_signature,
        headers: limitFields(v.headers),
        unread: true,
      });
    }
    const identity = new Identity({ keyId: v.key_id, owner: v.owner, scopes: v.scopes, alg: v.alg, label: v.label, created: v.created });
    return { identity, contentDigest: v.content_digest, covered: v.covered.map(parseComponent) };
  }

  /**
   * Reads the body and checks it, releasing its budget when res closes.
   * Throws a Refusal.
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   * @param {Head} head
   * @param {boolean} restore
   */
  async #body(req, res, head, restore) {
    const lease = this.#budget.lease();
    res.once('close', lease.release);
    const declared = declaredLength(req);
    if (/** @type {any} */ (req)[kContinue] && declared !== 0 && !res.headersSent) res.writeContinue();
    let body;
    try {
      body = await readBody(req, this.#maxBody, lease, restore);
    } catch (err) {
      if (isRefusal(err)) err.keyId = head.identity.keyId;
      throw err;
    }
    if (req.rawTrailers.length > 0) throw Object.assign(trailersRefusal(false), { keyId: head.identity.keyId });
    if (head.contentDigest !== undefined) {
      try {
        checkContentDigest(head.contentDigest, body);
      } catch (err) {
        if (!(err instanceof SignatureError)) throw err;
        throw refusal(401, err.reason, err.detail, { label: head.label, keyId: head.identity.keyId, error: err });
      }
    }
    return body;
  }

  /**
   * A refusal of an error thrown while verifying: a SignatureError is the
   * client's, a Refusal is made already, and anything else means a store
   * could not answer (503, fail closed).
   * @param {unknown} err
   * @returns {Refusal}
   */
  #asRefusal(err) {
    if (isRefusal(err)) return err;
    if (err instanceof SignatureError) {
      return refusal(statusOf(err.reason), err.reason, err.detail, { label: err.label, keyId: err.keyId, base: err.base, error: err, unread: true });
    }
    return refusal(503, ServerReason.Unavailable, 'the server cannot check signatures right now; retry later', { error: err, unread: true });
  }

  /**
   * The response to a refusal.
   * @param {import('node:http').IncomingMessage} req
   * @param {string} target
   * @param {Refusal} r
   */
  #response(req, target, r) {
    /** @type {Record<string, string>} */
    const h = {};
    if (r.status === 401) {
      h['WWW-Authenticate'] = `Signature realm="${this.#realm}"`;
      const as = r.acceptSignature !== undefined ? r.acceptSignature : this.#acceptSignature(req, target);
      if (as) h['Accept-Signature'] = as;
    } else if (r.status === 503) {
      h['Retry-After'] = '1';
    }
    if (r.headers) Object.assign(h, r.headers);
    if (r.unread && declaredLength(req) !== 0 && req.httpVersionMajor === 1) {
      // Close rather than read a body nobody will use.
      h.Connection = 'close';
    }
    return problemResponse(problemOf(r, this.#problemBase), this.#now(), h);
  }

  /**
   * @param {import('node:http').ServerResponse} res
   * @param {{ status: number, headers: Record<string, string>, body: string }} resp
   */
  #send(res, resp) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(resp.status, resp.headers);
    res.end(resp.body);
  }

  /**
   * What the policy asks a signature on req to cover, as an
   * Accept-Signature field value; "" when it cannot be said.
   * @param {import('node:http').IncomingMessage} req
   * @param {string} target
   */
  #acceptSignature(req, target) {
    const p = this.#policy;
    const headers = req.headers;
    let ids;
    try {
      if (p.requiredComponents !== undefined) {
        let list = p.requiredComponents;
        if (typeof list === 'function') {
          list = list(toMessage({ method: /** @type {string} */ (req.method), url: target, scheme: this.#schemeOf(req), headers: /** @type {any} */ (headers) }));
        }
        ids = list.map((c) => parseComponent(c).id);
      } else {
        ids = ['"@method"', '"@authority"', '"@path"'];
        const q = target.indexOf('?');
        if (q >= 0 && q < target.length - 1) ids.push('"@query"');
        if (headers['content-type'] !== undefined) ids.push('"content-type"');
        if (declaredLength(req) !== 0 || headers['content-digest'] !== undefined) ids.push('"content-digest"');
      }
      const label = Array.isArray(p.label) ? p.label[0] : p.label;
      return acceptSignature(label || 'sig1', ids, p.tag);
    } catch {
      return '';
    }
  }

  /** @param {import('node:http').IncomingMessage} req */
  #schemeOf(req) {
    if (typeof this.#scheme === 'function') return this.#scheme(req);
    if (typeof this.#scheme === 'string') return this.#scheme;
    return /** @type {any} */ (req.socket) && /** @type {any} */ (req.socket).encrypted ? 'https' : 'http';
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {Outcome} o
   */
  #observe(req, o) {
    if (this.#onOutcome) this.#onOutcome(req, o);
  }
}

/** @param {boolean} before */
function trailersRefusal(before) {
  return refusal(400, ServerReason.Trailers, 'the request has trailer fields, which this server does not accept: a signature cannot cover them before they arrive', { unread: before });
}

/**
 * @param {unknown} v
 * @param {number} def
 * @param {string} name
 */
function positive(v, def, name) {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new TypeError(`signet: ${name} must be a positive integer`);
  return v;
}

/**
 * Makes a verifier: `verifier.middleware` for Express and Connect,
 * `verifier.fastify` for Fastify, `verifier.handler(listener)` for
 * node:http, `verifier.verifyUpgrade` for WebSocket upgrades, and
 * `verifier.requireScopes(…)` to guard routes.
 * @param {VerifierOptions} options
 */
export function createVerifier(options) {
  return new Verifier(options);
}

/**
 * The fields of a limited verdict a refusal carries: RateLimit,
 * RateLimit-Policy and Retry-After, each field's lines joined; none other.
 * @param {Record<string, string[]> | undefined} headers
 * @returns {Record<string, string> | undefined}
 */
function limitFields(headers) {
  if (!headers) return undefined;
  /** @type {Record<string, string>} */
  const out = {};
  for (const [name, lines] of Object.entries(headers)) {
    const known = ['RateLimit', 'RateLimit-Policy', 'Retry-After'].find((n) => n.toLowerCase() === name.toLowerCase());
    if (known && Array.isArray(lines) && lines.length > 0) out[known] = lines.join(', ');
  }
  return out;
}
