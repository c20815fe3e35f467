// A fetch that signs every request, in the shape of an HTTP client transport.

import { concat } from './bytes.js';
import { SignatureError } from './errors.js';
import { keyImporter } from './keys.js';
import { isStream } from './message.js';
import { GATEWAY_TAG, GatewayKeys, verifiedResponse, verifyResponse } from './response.js';
import { sign } from './sign.js';

/** The problem type base of a Signet gateway: the type is this plus a reason code. */
export const DEFAULT_PROBLEM_BASE = 'https://signet.dev/problems/';

/**
 * Options of createSignedFetch.
 * @typedef {object} SignedFetchOptions
 * @property {string} keyId
 * @property {import('./keys.js').KeyMaterial} key
 * @property {import('./keys.js').Algorithm} [alg]
 * @property {string} [label]
 * @property {string[]} [components]
 * @property {string} [tag]
 * @property {number} [expiresIn]  sets `expires` this many seconds after `created`
 * @property {import('./digest.js').DigestAlgorithm} [digestAlgorithm]
 * @property {(request: Request) => Promise<Response>} [fetch]  the fetch to send with; default the global fetch
 * @property {() => number} [clock]  the local clock in milliseconds; default Date.now
 * @property {boolean} [retry]  whether to send a request again after a clock correction; default true
 * @property {string} [problemBase]  the gateway's problem type base; default "https://signet.dev/problems/"
 * @property {import('./response.js').GatewayKeys | string | URL | import('./verify.js').VerifyOptions['keys']} [gatewayKeys]
 *   the gateway's response keys: its JWK set URL (fetched once and kept, see
 *   GatewayKeys), a GatewayKeys, or keys pinned in code (a resolver, a Map or
 *   an object by keyid, as verify takes). Every response is then checked (see
 *   createSignedFetch)
 * @property {string[]} [gatewayPins]  with a JWK set URL: the RFC 7638 thumbprints of the only keys to accept
 * @property {boolean} [requireSignedResponses]  reject a response without a valid gateway signature; needs gatewayKeys
 * @property {import('./digest.js').HashFactory} [createHash]  an incremental hash for checking content as it
 *   streams (the node entry point passes node:crypto's); without it, content is held (at most 32 MiB) to be hashed
 */

/**
 * A fetch that signs, with a clock offset learnt per origin.
 * @typedef {((input: string | URL | Request, init?: RequestInit) => Promise<Response>) & {
 *   clockOffset(url: string | URL): number,
 *   setClockOffset(url: string | URL, seconds: number): void,
 * }} SignedFetch
 */

/**
 * RFC 9457 problem details, with `reason`: the last word of `type`.
 * @typedef {{ type?: string, title?: string, status?: number, detail?: string, reason: string | undefined,
 *   [member: string]: unknown }} Problem
 */

// The largest problem body readProblem reads: a refusal is a few hundred
// bytes, and a server's answer must not cost unbounded memory.
const MAX_PROBLEM_BYTES = 64 << 10;

// How many origins' clock offsets a signed fetch keeps; the least recently
// learnt goes first.
const MAX_ORIGINS = 256;

// A Date has whole seconds and the estimate below is off by up to half a
// second plus the round trip: a smaller change is noise, not a clock
// to correct.
const MIN_CORRECTION = 2;

// The auth-scheme of a challenge in WWW-Authenticate (RFC 9110 §11.6.1),
// at the start of the field or after a comma.
const SIGNATURE_CHALLENGE_RE = /(?:^|,)[ \t]*signature(?:[ \t,]|$)/i;

/**
 * Reads the RFC 9457 problem details of a response without consuming it.
 * Resolves to null when the response is not application/problem+json, or
 * its body is not JSON or is over 64 KiB. `reason` is the last path segment
 * of `type` when it is one of Signet's reason codes' shape (lower-case
 * words joined by "-").
 * @param {Response} response
 * @returns {Promise<Problem | null>}
 */
export async function readProblem(response) {
  const type = (response.headers.get('content-type') || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/problem+json') return null;
  let body;
  try {
    const text = await readText(response.clone(), MAX_PROBLEM_BYTES);
    if (text === null) return null;
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (body === null || typeof body !== 'object') return null;
  const t = typeof body.type === 'string' ? body.type : undefined;
  const m = t && /([a-z]+(?:-[a-z]+)*)$/.exec(t);
  return { ...body, reason: m ? m[1] : undefined };
}

/**
 * The body of response as UTF-8 text, or null when it is over max bytes
 * (the rest is not read).
 * @param {Response} response
 * @param {number} max
 * @returns {Promise<string | null>}
 */
async function readText(response, max) {
  if (!response.body) return '';
  const reader = response.body.getReader();
  /** @type {Uint8Array[]} */
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      // Not awaited: the cancel of one branch of a clone settles only when
      // the other branch is cancelled too.
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(concat(chunks));
}

/**
 * Creates a fetch that signs each request with a fresh nonce before sending
 * it with options.fetch (default: the global fetch).
 *
 * Clock correction. When the gateway itself refuses a request for a clock
 * reason, the wrapper corrects its clock offset for that origin from the
 * response's Date field and, unless options.retry is false, sends the
 * request once more, newly signed. The refusal counts as the gateway's only
 * when it is a 401 with `WWW-Authenticate: Signature` and an
 * application/problem+json body whose type is options.problemBase followed
 * by `expired` or `not-yet-valid`; and the offset is corrected only when the
 * Date moves it by two seconds or more in the direction that reason asks
 * for, so that the retried request can fare differently. An API behind the
 * gateway that answers its own 401 therefore never sees a request twice
 * (unless it mimics the gateway and also sends a Date that is off). Only a
 * replayable body is sent again: no body, or one that is not a stream sent
 * with its own Content-Digest.
 *
 * A stream body is sent as is only when the request already carries
 * Content-Digest; otherwise it is read into memory first, since its digest
 * must be known before the headers are sent.
 *
 * Signed responses. With options.gatewayKeys, every response's gateway
 * signature is checked (see verifyResponse): the header when it arrives,
 * the content as it is read, so that a body that does not match errors
 * instead of ending (read bodies to the end before trusting them;
 * verifiedResponse(response) says whether a response verified). A
 * response without a valid signature is passed on as it is, unless
 * options.requireSignedResponses is set, when the fetch rejects instead.
 * The clock is then corrected, and a request sent again, only on a
 * refusal the gateway signed as its own (tag signet-gateway), never on an
 * answer it relays from the API behind it, whatever it looks like.
 * Accept-Encoding is set to identity when the request has none: fetch
 * decodes content-coded bodies, whose digest could then not be checked.
 * @param {SignedFetchOptions} options
 * @returns {SignedFetch}
 */
export function createSignedFetch(options) {
  if (!options || typeof options !== 'object') throw new TypeError('signet: createSignedFetch needs options');
  if (options.keyId === undefined || options.keyId === null) throw new TypeError('signet: createSignedFetch needs keyId');
  const key = keyImporter(options.key, options.alg);
  if (key.type === 'public') throw new TypeError('signet: createSignedFetch needs a secret or private key, not a public key');
  const fetchImpl = options.fetch || globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TypeError('signet: no fetch available; pass options.fetch');
  const clock = options.clock || Date.now;
  const retry = options.retry !== false;
  const problemBase = options.problemBase === undefined ? DEFAULT_PROBLEM_BASE : options.problemBase;
  if (typeof problemBase !== 'string' || problemBase === '') throw new TypeError('signet: problemBase must be a non-empty string');
  /** @type {Map<string, number>} origin → server minus local time, in seconds */
  const offsets = new Map();
  const requireSigned = options.requireSignedResponses === true;
  let gatewayKeys = options.gatewayKeys;
  if (typeof gatewayKeys === 'string' || gatewayKeys instanceof URL) {
    gatewayKeys = new GatewayKeys(gatewayKeys, { pins: options.gatewayPins, fetch: (u) => fetchImpl(new Request(u)) });
  } else if (options.gatewayPins !== undefined) {
    throw new TypeError('signet: gatewayPins apply to a JWK set URL given as gatewayKeys');
  }
  if (requireSigned && gatewayKeys === undefined) throw new TypeError('signet: requireSignedResponses needs gatewayKeys');

  /** @param {string | URL} url */
  const originOf = (url) => new URL(String(url)).origin;
  /** @param {string} origin */
  const offsetOf = (origin) => offsets.get(origin) || 0;
  /**
   * @param {string} origin
   * @param {number} seconds
   */
  function setOffset(origin, seconds) {
    offsets.delete(origin);
    offsets.set(origin, seconds);
    if (offsets.size > MAX_ORIGINS) offsets.delete(/** @type {string} */ (offsets.keys().next().value));
  }

  /**
   * @param {Request} request
   * @param {Uint8Array<ArrayBuffer> | null | undefined} body  undefined: the request's own stream
   * @param {number} offset
   */
  async function send(request, body, offset) {
    const signed = await sign(
      { method: request.method, url: request.url, headers: request.headers, body: body === undefined ? request.body : body },
      {
        keyId: options.keyId,
        key: await key.load(),
        label: options.label,
        components: options.components,
        tag: options.tag,
        expiresIn: options.expiresIn,
        digestAlgorithm: options.digestAlgorithm,
        created: Math.floor(clock() / 1000) + offset,
      },
    );
    const headers = new Headers(request.headers);
    for (const [name, value] of Object.entries(signed.headers)) headers.set(name, value);
    if (gatewayKeys !== undefined && !headers.has('accept-encoding')) headers.set('accept-encoding', 'identity');
    /** @type {RequestInit} */
    const init = { headers };
    if (body !== null && body !== undefined) init.body = body;
    const response = await fetchImpl(new Request(request, init));
    return checkResponse(response, { method: request.method, url: request.url, headers });
  }

  /**
   * Checks the gateway's signature of a response to the request sent;
   * returns the response to pass on, and whether it is the gateway's own
   * signed answer.
   * @param {Response} response
   * @param {{ method: string, url: string, headers: Headers }} sent
   * @returns {Promise<{ response: Response, own: boolean }>}
   */
  async function checkResponse(response, sent) {
    if (gatewayKeys === undefined) return { response, own: false };
    try {
      const checked = await verifyResponse(response, {
        request: sent,
        keys: /** @type {any} */ (gatewayKeys),
        createHash: options.createHash,
      });
      const result = verifiedResponse(checked);
      return { response: checked, own: result !== undefined && result.tag === GATEWAY_TAG };
    } catch (err) {
      if (!requireSigned) return { response, own: false };
      if (response.body) response.body.cancel().catch(() => {});
      if (err instanceof SignatureError) throw err;
      throw new Error(`signet: the response to ${sent.method} ${sent.url} could not be checked: ${err instanceof Error ? err.message : err}`, { cause: err });
    }
  }

  /**
   * Returns the corrected offset when response is the gateway's refusal for
   * a clock reason and its Date moves the offset that signed the request
   * (used) the way the reason asks; undefined otherwise.
   * @param {Response} response
   * @param {number} used
   * @param {boolean} own  whether the gateway signed it as its own answer
   * @returns {Promise<number | undefined>}
   */
  async function correction(response, used, own) {
    // With the gateway's keys, only its own signed refusal (and Date) counts.
    if (gatewayKeys !== undefined && !own) return undefined;
    if (response.status !== 401) return undefined;
    if (!SIGNATURE_CHALLENGE_RE.test(response.headers.get('www-authenticate') || '')) return undefined;
    const problem = await readProblem(response);
    if (!problem || typeof problem.type !== 'string' || !problem.type.startsWith(problemBase)) return undefined;
    const reason = problem.type.slice(problemBase.length);
    if (reason !== 'expired' && reason !== 'not-yet-valid') return undefined;
    const date = Date.parse(response.headers.get('date') || '');
    if (Number.isNaN(date)) return undefined;
    // Date has whole seconds: the server's clock read somewhere in [date, date+1s).
    const offset = Math.round((date + 500 - clock()) / 1000);
    // expired: our created was too old, so the offset must grow;
    // not-yet-valid: it was too far ahead, so the offset must shrink.
    const moved = reason === 'expired' ? offset - used : used - offset;
    return moved >= MIN_CORRECTION ? offset : undefined;
  }

  /**
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   */
  async function signedFetch(input, init = undefined) {
    const request = new Request(input, init);
    const origin = originOf(request.url);
    const streaming = init !== undefined && isStream(init.body) && request.headers.has('content-digest');
    // undefined: the body stays a stream, signed through its Content-Digest.
    const body = streaming ? undefined : request.body === null ? null : new Uint8Array(await request.arrayBuffer());

    const used = offsetOf(origin);
    const { response, own } = await send(request, body, used);
    const corrected = await correction(response, used, own);
    if (corrected === undefined) return response;
    setOffset(origin, corrected);
    if (!retry || streaming) return response;
    if (response.body) await response.body.cancel().catch(() => {});
    return (await send(request, body, corrected)).response;
  }

  /**
   * The clock offset learnt for the origin of url (server minus local time,
   * in whole seconds); 0 when none was learnt.
   * @param {string | URL} url
   */
  signedFetch.clockOffset = (url) => offsetOf(originOf(url));
  /**
   * Sets the clock offset for the origin of url, e.g. one saved from an
   * earlier run. The wrapper keeps offsets for the 256 origins most
   * recently set or learnt.
   * @param {string | URL} url
   * @param {number} seconds
   */
  signedFetch.setClockOffset = (url, seconds) => {
    if (!Number.isInteger(seconds)) throw new TypeError('signet: a clock offset must be an integer number of seconds');
    setOffset(originOf(url), seconds);
  };
  return signedFetch;
}
