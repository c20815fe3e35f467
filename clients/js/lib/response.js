// Signed responses (docs/signed-responses.md): a Signet gateway signs every
// response it sends, binding it to the request it answers; the client checks
// the header when it arrives and the content as it streams.

import { base64url } from './bytes.js';
import { contentChecker } from './digest.js';
import { refuse, Reason } from './errors.js';
import { importKey } from './keys.js';
import { toMessage } from './message.js';
import { digest } from './native.js';
import { verifyHeader } from './verify.js';

/** The tag of a response the gateway relays from the API behind it. */
export const RESPONSE_TAG = 'signet-response';
/** The tag of a response the gateway makes itself: its refusals, its errors. */
export const GATEWAY_TAG = 'signet-gateway';
/** Where a gateway publishes its response keys, as a JWK set. */
export const KEYS_PATH = '/.well-known/signet-keys';

/**
 * Options of verifyResponse.
 * @typedef {object} VerifyResponseOptions
 * @property {import('./message.js').MessageInput} request  the request the response answers, as it was sent
 *   (with its Signature field): its method, path, query and signature are covered
 * @property {import('./verify.js').VerifyOptions['keys'] | GatewayKeys} keys  the gateway's response keys
 * @property {string[]} [tags]  the tags to check; default both, "signet-response" and "signet-gateway"
 * @property {import('./digest.js').HashFactory} [createHash]  an incremental hash (node:crypto's), so
 *   that content is checked without being held (the node entry point passes it)
 * @property {number} [maxHeldBytes]  without createHash, the most content held to check it; default 32 MiB
 */

/**
 * The components a response signature must cover, for this request and
 * response.
 * @param {import('./message.js').Message} request
 * @param {Headers} headers
 */
function requiredComponents(request, headers) {
  const out = ['@status', 'date'];
  if (headers.has('content-type')) out.push('content-type');
  out.push('"@method";req', '"@path";req');
  if (request.kind === 'request' && request.query !== null) out.push('"@query";req');
  if (request.fields.has('signature')) out.push('"signature";req');
  return out;
}

/**
 * A verified response signature: the first of them, all of them, and the
 * Content-Digest the content must match, when one covers it.
 * @typedef {import('./verify.js').VerifiedSignature & { signatures: import('./verify.js').VerifiedSignature[],
 *   contentDigest: string | undefined }} ResponseResult
 */

/** @type {WeakMap<Response, ResponseResult>} */
const verified = new WeakMap();

/**
 * The gateway signature of a response that verifyResponse (or a signed
 * fetch with gatewayKeys) returned, or undefined when it has none that
 * verified. Its content is checked as it is read: only reading to the end
 * vouches for it.
 * @param {Response} response
 * @returns {ResponseResult | undefined}
 */
export function verifiedResponse(response) {
  return verified.get(response);
}

/**
 * Checks the gateway's signature on a response: its header now, its
 * content as it is read. Resolves to a Response to use instead, whose body
 * errors (with a SignatureError: digest-mismatch) in place of ending when
 * the content does not match the signed Content-Digest, and
 * (missing-component) as soon as content arrives that the signature does
 * not cover. Rejects with a SignatureError when the signature is missing
 * or does not verify. Time is not checked: the client's clock may be the
 * one that is off, and the response is bound to its one request by the
 * request's signature.
 *
 * fetch decodes content-coded responses: a response with Content-Encoding
 * (other than identity) has content that cannot be checked, and is
 * refused; ask for identity (a signed fetch with gatewayKeys does).
 * @param {Response} response
 * @param {VerifyResponseOptions} options
 * @returns {Promise<Response>}
 */
export async function verifyResponse(response, options) {
  if (!options || options.request === undefined) throw new TypeError('signet: verifyResponse needs the request the response answers');
  const keys = options.keys instanceof GatewayKeys ? options.keys.resolver() : options.keys;
  const request = toMessage(options.request);
  const message = toMessage({ status: response.status, headers: response.headers });
  const header = await verifyHeader(message, {
    keys,
    request: options.request,
    requiredComponents: requiredComponents(request, response.headers),
    requiredParams: ['created', 'keyid'],
    tag: options.tags || [RESPONSE_TAG, GATEWAY_TAG],
    maxAge: null,
    clockSkew: Infinity,
    nonces: false,
  }, false);
  const result = { ...header.signatures[0], signatures: header.signatures, contentDigest: header.contentDigest };
  const coding = (response.headers.get('content-encoding') || 'identity').trim().toLowerCase();
  if (response.body === null || response.status === 101) {
    verified.set(response, result);
    return response;
  }
  if (coding !== 'identity' && result.contentDigest !== undefined) {
    throw refuse(Reason.DigestMismatch, `the content is ${coding}-encoded and fetch has decoded it, so its Content-Digest cannot be checked; ask for identity`, { label: result.label });
  }
  const checker = result.contentDigest === undefined ? undefined
    : contentChecker(result.contentDigest, { createHash: options.createHash, maxHeld: options.maxHeldBytes });
  const label = result.label;
  const checked = response.body.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      if (chunk.length === 0) return;
      if (!checker) {
        controller.error(refuse(Reason.MissingComponent, 'the response has content, and its signature does not cover content-digest', { label }));
        return;
      }
      checker.update(chunk);
      controller.enqueue(chunk);
    },
    async flush(controller) {
      if (!checker) return;
      try {
        await checker.check();
      } catch (err) {
        controller.error(err);
      }
    },
  }));
  const out = new Response(checked, { status: response.status, statusText: response.statusText, headers: response.headers });
  for (const p of /** @type {const} */ (['url', 'redirected', 'type'])) {
    Object.defineProperty(out, p, { value: response[p] });
  }
  verified.set(out, result);
  return out;
}

/**
 * The RFC 7638 thumbprint of a public JWK (SHA-256, base64url): a name for
 * the key anyone can compute from it, to pin it.
 * @param {{ kty: string, crv?: string, x?: string, y?: string, n?: string, e?: string }} jwk
 * @returns {Promise<string>}
 */
export async function jwkThumbprint(jwk) {
  let canonical;
  switch (jwk.kty) {
    case 'OKP': canonical = { crv: jwk.crv, kty: 'OKP', x: jwk.x }; break;
    case 'EC': canonical = { crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y }; break;
    case 'RSA': canonical = { e: jwk.e, kty: 'RSA', n: jwk.n }; break;
    default: throw new TypeError(`signet: no thumbprint for kty ${JSON.stringify(jwk.kty)}`);
  }
  const bytes = new TextEncoder().encode(JSON.stringify(canonical));
  return base64url(await digest('SHA-256', bytes));
}

/** The most a JWK set may weigh. */
const MAX_KEY_SET_BYTES = 64 << 10;

/** How often, at most, the set is fetched again for a keyid it lacks (ms). */
const REFETCH_MS = 60_000;

/**
 * Parses a JWK set of public keys into imported keys by kid. Keys of an
 * unknown kty, or whose "use" is not "sig", are skipped; a key without a
 * kid, a kid used twice, or a private or secret key is an error.
 * @param {string | { keys: object[] }} set
 * @param {string[]} [pins]  if given, only keys with these thumbprints are kept
 * @returns {Promise<Map<string, import('./keys.js').Key>>}
 */
export async function parseJwks(set, pins) {
  const obj = typeof set === 'string' ? JSON.parse(set) : set;
  if (!obj || !Array.isArray(obj.keys)) throw new TypeError('signet: not a JWK set (an object with a "keys" array)');
  /** @type {Map<string, import('./keys.js').Key>} */
  const out = new Map();
  for (const jwk of obj.keys) {
    if (!jwk || typeof jwk !== 'object' || !['OKP', 'EC', 'RSA', 'oct'].includes(jwk.kty)) continue;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new TypeError('signet: a key of the JWK set has no kid');
    if (jwk.kty === 'oct' || jwk.d !== undefined) throw new TypeError(`signet: key ${jwk.kid} of the JWK set is private or secret`);
    if (out.has(jwk.kid)) throw new TypeError(`signet: kid ${jwk.kid} is used twice in the JWK set`);
    if (pins && !pins.includes(await jwkThumbprint(jwk))) continue;
    out.set(jwk.kid, await importKey(jwk));
  }
  return out;
}

/**
 * The response keys of a gateway, from the JWK set it publishes (url, e.g.
 * https://gateway/.well-known/signet-keys): fetched on first use and kept;
 * fetched again, at most once a minute, for a keyid it does not know (a
 * rotated key). The set is only as trustworthy as the way it is fetched:
 * url must be https, or http to localhost or a loopback address, unless
 * pins (RFC 7638 thumbprints, see jwkThumbprint) name the keys to accept.
 */
export class GatewayKeys {
  /**
   * @param {string | URL} url
   * @param {{ pins?: string[], fetch?: (input: string) => Promise<Response>, clock?: () => number }} [options]
   */
  constructor(url, options = {}) {
    const u = new URL(String(url));
    const loopback = u.hostname === 'localhost' || /^127\./.test(u.hostname) || u.hostname === '[::1]';
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback) && !(options.pins && options.pins.length > 0)) {
      throw new TypeError(`signet: the JWK set at ${u.origin} would come over plain http: use https, or pin its keys`);
    }
    this.url = u.href;
    this.pins = options.pins;
    this.fetchImpl = options.fetch || ((input) => globalThis.fetch(input));
    this.clock = options.clock || Date.now;
    /** @type {Map<string, import('./keys.js').Key> | undefined} */
    this.keys = undefined;
    this.fetchedAt = 0;
    /** @type {Promise<void> | undefined} */
    this.pending = undefined;
  }

  async refresh() {
    if (!this.pending) {
      this.pending = (async () => {
        try {
          const res = await this.fetchImpl(this.url);
          if (res.status !== 200) throw new Error(`signet: fetching the gateway's keys from ${this.url}: ${res.status}`);
          const text = await res.text();
          if (text.length > MAX_KEY_SET_BYTES) throw new Error(`signet: the gateway's key set is over ${MAX_KEY_SET_BYTES} bytes`);
          this.keys = await parseJwks(text, this.pins);
          this.fetchedAt = this.clock();
        } finally {
          this.pending = undefined;
        }
      })();
    }
    return this.pending;
  }

  /**
   * The key for a keyid, or null when the set has none (after fetching it
   * again if it may have changed). Rejects when the set cannot be fetched.
   * @param {string} keyId
   */
  async resolve(keyId) {
    if (this.keys && this.keys.has(keyId)) return /** @type {import('./keys.js').Key} */ (this.keys.get(keyId));
    if (!this.keys || this.clock() - this.fetchedAt >= REFETCH_MS) await this.refresh();
    return (this.keys && this.keys.get(keyId)) || null;
  }

  /** @returns {import('./verify.js').KeyResolver} */
  resolver() {
    return (keyId) => this.resolve(keyId);
  }
}
