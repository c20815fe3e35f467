// A fetch that signs every request, in the shape of an HTTP client transport.

import { importKey } from './keys.js';
import { isStream } from './message.js';
import { sign } from './sign.js';

const TIME_REASON_RE = /(?:^|[/#:])(?:not-yet-valid|expired)$/;

/**
 * Reads the RFC 9457 problem details of a response without consuming it.
 * Resolves to null when the response is not application/problem+json.
 * `reason` is the last path segment of `type` when it is one of Signet's
 * reason codes' shape (lower-case words joined by "-").
 * @param {Response} response
 */
export async function readProblem(response) {
  const type = (response.headers.get('content-type') || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/problem+json') return null;
  let body;
  try {
    body = await response.clone().json();
  } catch {
    return null;
  }
  if (body === null || typeof body !== 'object') return null;
  const t = typeof body.type === 'string' ? body.type : undefined;
  const m = t && /([a-z]+(?:-[a-z]+)*)$/.exec(t);
  return { ...body, reason: m ? m[1] : undefined };
}

/**
 * Creates a fetch that signs each request with a fresh nonce before sending
 * it with options.fetch (default: the global fetch).
 *
 * When the server refuses a request with 401 and a problem type ending in
 * "not-yet-valid" or "expired", the clock offset is corrected from the
 * response's Date header and kept for later requests; unless options.retry
 * is false, the request is sent again once, newly signed, if its body can be
 * replayed (no body, or a body that is not a stream). A stream body is sent as is only when the request
 * already carries Content-Digest; otherwise it is read into memory first,
 * since its digest must be known before the headers are sent.
 * @param {object} options  see SignedFetchOptions in index.d.ts
 */
export function createSignedFetch(options = {}) {
  if (options.keyId === undefined || options.keyId === null) throw new TypeError('signet: createSignedFetch needs keyId');
  const key = importKey(options.key, options.alg);
  const fetchImpl = options.fetch || globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TypeError('signet: no fetch available; pass options.fetch');
  const clock = options.clock || Date.now;
  const retry = options.retry !== false;
  let offset = 0;

  async function send(request, body) {
    const signed = await sign(
      { method: request.method, url: request.url, headers: request.headers, body: body === undefined ? request.body : body },
      {
        keyId: options.keyId,
        key,
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
    const init = { headers };
    if (body !== null && body !== undefined) init.body = body;
    return fetchImpl(new Request(request, init));
  }

  async function timeCorrection(response) {
    if (response.status !== 401) return undefined;
    const problem = await readProblem(response);
    if (!problem || typeof problem.type !== 'string' || !TIME_REASON_RE.test(problem.type)) return undefined;
    const date = Date.parse(response.headers.get('date') || '');
    if (Number.isNaN(date)) return undefined;
    // Date has whole seconds: the server's clock read somewhere in [date, date+1s).
    return Math.round((date + 500 - clock()) / 1000);
  }

  /**
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   */
  async function signedFetch(input, init = undefined) {
    const request = new Request(input, init);
    const streaming = init !== undefined && isStream(init.body) && request.headers.has('content-digest');
    // undefined: the body stays a stream, signed through its Content-Digest.
    const body = streaming ? undefined : request.body === null ? null : new Uint8Array(await request.arrayBuffer());

    const response = await send(request, body);
    const correction = await timeCorrection(response);
    if (correction === undefined) return response;
    offset = correction;
    if (!retry || streaming) return response;
    if (response.body) await response.body.cancel().catch(() => {});
    return send(request, body);
  }

  Object.defineProperty(signedFetch, 'clockOffset', {
    get: () => offset,
    set: (v) => {
      if (!Number.isInteger(v)) throw new TypeError('signet: clockOffset must be an integer number of seconds');
      offset = v;
    },
    enumerable: true,
  });
  return signedFetch;
}
