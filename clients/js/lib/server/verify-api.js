// The client of the verify API of a Signet gateway (POST /v1/verify on its
// admin listener): a Node server hands it the signature part of a request
// (method, target, authority, scheme, field lines), Signet checks it with
// its key store, its replay cache and its policy, and answers with the
// caller's identity or the refusal. The server then reads the body and
// checks it against the Content-Digest Signet names. Keys, revocation and
// replay protection are thus shared with the gateways, and no secret
// leaves Signet.
//
// The exchange (see the package README, "The verify API"):
//
//   POST /v1/verify   Content-Type: application/json, signed by a key with
//                     the "verify" scope
//   {"method":"POST","target":"/v1/orders?customer=42","authority":"api.example.com",
//    "scheme":"https","headers":[["Host","api.example.com"],…],"has_content":true}
//
//   200 {"verified":true,"key_id":"sk_…","owner":"acme","scopes":["orders:read"],
//        "alg":"hmac-sha256","label":"sig1","created":1700000000,"expires":null,
//        "covered":["\"@method\"",…],"content_digest":"sha-256=:…:"}
//   200 {"verified":false,"status":401,"reason":"bad-signature","key_id":"sk_…",
//        "problem":{type,title,status,detail,signature[,signature_base]},
//        "accept_signature":"sig1=(…)"}
//   other statuses: the call itself failed (401/403 for the caller's own
//   key, 400 for a malformed call, 503 when Signet's stores cannot answer);
//   the server answers its client 503 (fail closed).

import { createSignedFetch } from '../fetch.js';

const kVerifyApi = Symbol('signet.verifyApi');

// The most of a verdict that is read: verdicts are small.
const MAX_VERDICT = 256 << 10;

/** The timeout of a verify API call made without one, in milliseconds. */
export const DEFAULT_VERIFY_API_TIMEOUT = 2000;

/**
 * The description of a received request that the verify API checks.
 * @typedef {object} VerifyApiRequest
 * @property {string} method  as received
 * @property {string} target  the request-target as received (origin form), raw
 * @property {string} authority  the authority the client addressed (the Host field, or what the server was told to use)
 * @property {string} scheme  "http" or "https", as the client used it
 * @property {[string, string][]} headers  every field line as received, in
 *   order; values are Latin-1 strings: each character (U+0000–U+00FF) one octet
 * @property {boolean} has_content  whether the request has content (a
 *   non-zero or unknown length): the default profile then demands content-digest
 */

/**
 * The verify API's answer.
 * @typedef {{ verified: true, key_id: string, owner?: string, scopes: string[], alg: string, label: string,
 *   created?: number, expires?: number | null, covered: string[], content_digest?: string }
 *   | { verified: false, status: number, reason: string, key_id?: string,
 *   problem: import('./problem.js').Problem, accept_signature?: string,
 *   headers?: Record<string, string[]> }} Verdict
 */

/**
 * A verify API client: pass it as the keys of createVerifier.
 * @typedef {object} VerifyApi
 * @property {URL} endpoint
 * @property {(request: VerifyApiRequest) => Promise<Verdict>} verify  rejects
 *   when the call fails or its answer is not a verdict
 */

/**
 * Options of verifyApi.
 * @typedef {object} VerifyApiOptions
 * @property {string | URL} url  the admin listener of a Signet gateway, e.g. http://127.0.0.1:9090
 * @property {string} keyId  the key this server signs its calls with: it needs the "verify" scope
 * @property {import('../keys.js').KeyMaterial} key
 * @property {import('../keys.js').Algorithm} [alg]
 * @property {number} [timeout]  per call, in milliseconds; default 2000
 * @property {(request: Request) => Promise<Response>} [fetch]  the fetch to send with; default globalThis.fetch
 */

/**
 * Reports whether x is a verify API client.
 * @param {unknown} x
 * @returns {x is VerifyApi}
 */
export function isVerifyApi(x) {
  return x !== null && typeof x === 'object' && /** @type {any} */ (x)[kVerifyApi] === true;
}

/**
 * A client of the verify API of a Signet gateway, to be given as the keys
 * of createVerifier: the gateway then checks each request's signatures
 * with its key store, replay cache and policy. Each call is signed with
 * keyId and key, and bounded by the timeout; a call that fails makes the
 * request 503 (fail closed).
 * @param {VerifyApiOptions} options
 * @returns {VerifyApi}
 */
export function verifyApi(options) {
  if (!options || typeof options !== 'object') throw new TypeError('signet: verifyApi needs options');
  const base = new URL(String(options.url));
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('signet: verifyApi needs an http: or https: url');
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const endpoint = new URL('v1/verify', base);
  const timeout = options.timeout === undefined ? DEFAULT_VERIFY_API_TIMEOUT : options.timeout;
  if (typeof timeout !== 'number' || !(timeout > 0)) throw new TypeError('signet: timeout must be a positive number of milliseconds');
  const signed = createSignedFetch({ keyId: options.keyId, key: options.key, alg: options.alg, fetch: options.fetch });
  /** @type {VerifyApi} */
  const api = {
    endpoint,
    async verify(request) {
      const res = await signed(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(timeout),
        redirect: 'manual',
      });
      const text = await readLimited(res);
      if (res.status !== 200) {
        throw new Error(`signet: the verify API at ${endpoint} answered ${res.status}: ${text.slice(0, 200)}`);
      }
      return verdictOf(JSON.parse(text), endpoint);
    },
  };
  Object.defineProperty(api, kVerifyApi, { value: true });
  return api;
}

/** @param {Response} res */
async function readLimited(res) {
  const len = Number(res.headers.get('content-length'));
  if (len > MAX_VERDICT) {
    await res.body?.cancel();
    throw new Error(`signet: the verify API answered ${len} bytes, more than a verdict holds`);
  }
  const text = await res.text();
  if (text.length > MAX_VERDICT) throw new Error('signet: the verify API answered more than a verdict holds');
  return text;
}

/**
 * Checks the shape of a verdict: a server acts on it.
 * @param {any} v
 * @param {URL} endpoint
 * @returns {Verdict}
 */
function verdictOf(v, endpoint) {
  const bad = (/** @type {string} */ what) => new Error(`signet: the verify API at ${endpoint} answered a malformed verdict: ${what}`);
  const str = (/** @type {unknown} */ x) => typeof x === 'string';
  if (!v || typeof v !== 'object' || typeof v.verified !== 'boolean') throw bad('no "verified"');
  if (v.verified) {
    if (!str(v.key_id) || v.key_id === '' || !str(v.alg) || !str(v.label)) throw bad('"key_id", "alg" and "label" must be strings');
    if (!Array.isArray(v.scopes) || !v.scopes.every(str)) throw bad('"scopes" must be an array of strings');
    if (!Array.isArray(v.covered) || !v.covered.every(str)) throw bad('"covered" must be an array of strings');
    if (v.content_digest !== undefined && v.content_digest !== null && !str(v.content_digest)) throw bad('"content_digest" must be a string');
    if (v.owner !== undefined && v.owner !== null && !str(v.owner)) throw bad('"owner" must be a string');
    if (v.content_digest === null) delete v.content_digest;
    return v;
  }
  if (!Number.isInteger(v.status) || v.status < 400 || v.status > 599) throw bad('"status" must be an error status');
  if (!str(v.reason) || !/^[a-z][a-z0-9-]*$/.test(v.reason)) throw bad('"reason" must be a reason code');
  if (!v.problem || typeof v.problem !== 'object') throw bad('no "problem"');
  if (v.accept_signature !== undefined && v.accept_signature !== null && !str(v.accept_signature)) throw bad('"accept_signature" must be a string');
  if (v.accept_signature === null) delete v.accept_signature;
  if (v.headers !== undefined) {
    const ok = v.headers && typeof v.headers === 'object' && !Array.isArray(v.headers) &&
      Object.values(v.headers).every((lines) => Array.isArray(lines) && lines.every(str));
    if (!ok) throw bad('"headers" must map field names to arrays of strings');
  }
  return v;
}
