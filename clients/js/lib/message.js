// The message model: every accepted request or response shape (WHATWG
// Request/Response, Node's IncomingMessage, plain objects) is reduced to the
// parts RFC 9421 derives components from, keeping the target URI raw.

import { concat, utf8 } from './bytes.js';

/**
 * Header fields: a `Headers`, a `Map`, an array of `[name, value]` pairs
 * (repeat a name to express several field lines), or a plain object whose
 * values are strings, numbers, or arrays of them.
 * @typedef {Headers | Map<string, string | string[]> | ReadonlyArray<readonly [string, string]>
 *   | Record<string, string | number | ReadonlyArray<string> | undefined>} FieldsInput
 */

/**
 * A body. Bytes, strings (as UTF-8) and `URLSearchParams` are used as they
 * are; a `Blob` is read; streams (`ReadableStream`, Node streams, async
 * iterables of bytes or strings) are read when needed.
 * @typedef {string | Uint8Array | ArrayBuffer | ArrayBufferView | Blob | URLSearchParams
 *   | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array | string> | null} BodyInput
 */

/**
 * A request given as a plain object.
 * @typedef {object} PlainRequest
 * @property {string} method  used exactly as given (its case is never changed)
 * @property {string | URL} url  an absolute URL (the authority comes from it;
 *   a Host field is ignored), or origin-form (`/path?query`, as a server
 *   receives it) with a Host field. Path and query are used raw, their
 *   percent-encoding kept.
 * @property {FieldsInput} [headers]
 * @property {BodyInput} [body]
 * @property {FieldsInput} [trailers]  for components with the `tr` parameter
 * @property {string} [scheme]  of an origin-form url; default "https"
 * @property {string} [requestTarget]  the request-target as on the request
 *   line when not origin-form (absolute-form, authority-form, `*`)
 */

/**
 * A response given as a plain object.
 * @typedef {object} PlainResponse
 * @property {number} status
 * @property {FieldsInput} [headers]
 * @property {BodyInput} [body]
 * @property {FieldsInput} [trailers]
 */

/**
 * The parts of a Node.js `http.IncomingMessage` (a request a server
 * received, or a response a client received) this package reads; its body
 * is read from it as an async iterable.
 * @typedef {object} IncomingMessageLike
 * @property {string[]} rawHeaders
 * @property {string} [method]
 * @property {string} [url]
 * @property {number} [statusCode]
 * @property {object | null} [socket]  its `encrypted` tells https from http
 * @property {() => AsyncIterator<Uint8Array | string>} [Symbol.asyncIterator]
 */

/**
 * Any message this package accepts: a WHATWG `Request` or `Response`, a
 * Node.js `IncomingMessage`, or a plain object.
 * @typedef {Request | Response | IncomingMessageLike | PlainRequest | PlainResponse} MessageInput
 */

/**
 * What every message has.
 * @typedef {object} MessageParts
 * @property {Map<string, string[]>} fields    lower-cased name → field line values, in order
 * @property {Map<string, string[]>|null} trailers
 * @property {unknown} body             the body as given (bytes, string, stream, …)
 * @property {'whatwg'|'node'|'plain'} source
 * @property {any} original
 */

/**
 * @typedef {object} RequestParts
 * @property {'request'} kind
 * @property {string} method
 * @property {string} scheme            lower-cased
 * @property {string} authority         lower-cased host, default port removed
 * @property {string} path              raw, "" when absent
 * @property {string|null} query        raw, without "?"; null when there is no "?"
 * @property {string} requestTarget     as on the request line
 */

/**
 * @typedef {object} ResponseParts
 * @property {'response'} kind
 * @property {number} status
 */

/**
 * A request or response reduced to what components are derived from.
 * @typedef {(MessageParts & RequestParts) | (MessageParts & ResponseParts)} Message
 */

/** @type {Record<string, string>} */
const DEFAULT_PORTS = { http: '80', https: '443', ws: '80', wss: '443' };
const FIELD_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ABSOLUTE_URL_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#[\s\S]*)?$/;
const REG_NAME_RE = /^[A-Za-z0-9\-._~!$&'()*+,;=%]+$/;
const NEEDS_WHATWG_RE = /[^\x21-\x7e]/;

/**
 * Reports whether x looks like a WHATWG Request.
 * @param {any} x
 * @returns {x is Request}
 */
export function isWhatwgRequest(x) {
  return (
    (typeof Request !== 'undefined' && x instanceof Request) ||
    (typeof x.url === 'string' && typeof x.method === 'string' && typeof x.clone === 'function' &&
      x.headers != null && typeof x.headers.get === 'function')
  );
}

/**
 * Reports whether x looks like a WHATWG Response.
 * @param {any} x
 * @returns {x is Response}
 */
export function isWhatwgResponse(x) {
  return (
    (typeof Response !== 'undefined' && x instanceof Response) ||
    (typeof x.status === 'number' && x.method === undefined && typeof x.clone === 'function' &&
      x.headers != null && typeof x.headers.get === 'function')
  );
}

/**
 * @param {Map<string, string[]>} map
 * @param {unknown} name
 * @param {unknown} value
 */
function addField(map, name, value) {
  const n = String(name);
  if (!FIELD_NAME_RE.test(n)) throw new TypeError(`signet: invalid field name ${JSON.stringify(n)}`);
  let v = value;
  if (typeof v === 'number' || typeof v === 'bigint') v = String(v);
  if (typeof v !== 'string') throw new TypeError(`signet: value of field ${n} must be a string`);
  const lname = n.toLowerCase();
  const lines = map.get(lname);
  if (lines) lines.push(v);
  else map.set(lname, [v]);
}

/**
 * Builds the field table from a Headers object, a Map, an array of
 * [name, value] pairs (repeated names = repeated field lines), or a plain
 * object whose values are strings, numbers or arrays of them.
 * @param {any} headers
 * @returns {Map<string, string[]>}
 */
export function fieldTable(headers) {
  /** @type {Map<string, string[]>} */
  const map = new Map();
  if (headers == null) return map;
  if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('signet: header pairs must be [name, value]');
      addField(map, pair[0], pair[1]);
    }
    return map;
  }
  if (typeof headers[Symbol.iterator] === 'function' && typeof headers !== 'string') {
    // Headers, Map and other iterables of pairs.
    for (const [name, value] of headers) {
      if (Array.isArray(value)) for (const v of value) addField(map, name, v);
      else addField(map, name, value);
    }
    return map;
  }
  if (typeof headers === 'object') {
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) addField(map, name, v);
      else addField(map, name, value);
    }
    return map;
  }
  throw new TypeError('signet: headers must be a Headers, an object or an array of pairs');
}

/**
 * node:http rawHeaders; HTTP/2 pseudo-header fields (":authority", …) are
 * set apart.
 * @param {string[]} raw
 */
function rawHeaderTable(raw) {
  /** @type {Map<string, string[]>} */
  const map = new Map();
  /** @type {Map<string, string>} */
  const pseudo = new Map();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (String(raw[i]).startsWith(':')) pseudo.set(raw[i], raw[i + 1]);
    else addField(map, raw[i], raw[i + 1]);
  }
  return { map, pseudo };
}

/**
 * The ASCII form (IDNA, as the URL Standard's host parser does it) of a
 * host with non-ASCII characters; "" when it is not a valid domain. The
 * ASCII characters around must be valid in a reg-name already, so that the
 * URL parser cannot read part of the host as a path, port or userinfo.
 * @param {string} host
 */
function domainToASCII(host) {
  if (!/^[A-Za-z0-9\-._~!$&'()*+,;=\u0080-\uffff]+$/.test(host)) return '';
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return '';
  }
}

/**
 * Normalizes an authority: userinfo dropped, host lower-cased (IDNA for
 * non-ASCII), default port for the scheme removed.
 * @param {string} raw
 * @param {string} scheme
 */
export function normalizeAuthority(raw, scheme) {
  let a = raw.slice(raw.lastIndexOf('@') + 1);
  let host;
  let port = '';
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    if (end < 0) throw new TypeError(`signet: invalid authority ${JSON.stringify(raw)}`);
    host = a.slice(0, end + 1);
    const rest = a.slice(end + 1);
    if (rest !== '') {
      if (rest[0] !== ':') throw new TypeError(`signet: invalid authority ${JSON.stringify(raw)}`);
      port = rest.slice(1);
    }
  } else {
    const colon = a.lastIndexOf(':');
    if (colon >= 0) {
      host = a.slice(0, colon);
      port = a.slice(colon + 1);
    } else {
      host = a;
    }
    if (/[^\x00-\x7f]/.test(host)) host = domainToASCII(host);
    if (!REG_NAME_RE.test(host)) throw new TypeError(`signet: invalid host in ${JSON.stringify(raw)}`);
  }
  if (!/^[0-9]*$/.test(port)) throw new TypeError(`signet: invalid port in ${JSON.stringify(raw)}`);
  host = host.toLowerCase();
  if (port !== '') port = String(Number(port));
  if (port === '' || port === DEFAULT_PORTS[scheme]) return host;
  return `${host}:${port}`;
}

/** @param {string} target */
function splitTarget(target) {
  const hash = target.indexOf('#');
  const t = hash >= 0 ? target.slice(0, hash) : target;
  const q = t.indexOf('?');
  return q >= 0 ? { path: t.slice(0, q), query: t.slice(q + 1) } : { path: t, query: null };
}

/**
 * @param {unknown} method
 * @param {unknown} url
 * @param {Map<string, string[]>} fields
 * @param {unknown} body
 * @param {'whatwg'|'node'|'plain'} source
 * @param {any} original
 * @param {{ scheme?: string, requestTarget?: string, trailers?: FieldsInput }} [extra]
 * @returns {Message}
 */
export function requestMessage(method, url, fields, body, source, original, extra = {}) {
  if (typeof method !== 'string' || method === '') throw new TypeError('signet: request method must be a non-empty string');
  if (typeof url !== 'string' && !(url instanceof URL)) throw new TypeError('signet: request url must be a string or URL');
  let u = String(url);
  let scheme;
  let authority;
  let path;
  let query;
  if (u.startsWith('/') || u === '*') {
    // Origin-form (as a server receives it): the authority is the Host field.
    const hosts = fields.get('host');
    if (!hosts || hosts.length !== 1) throw new TypeError('signet: a request with an origin-form url needs exactly one Host header');
    scheme = (extra.scheme || 'https').toLowerCase();
    authority = normalizeAuthority(hosts[0].trim(), scheme);
    ({ path, query } = u === '*' ? { path: '', query: null } : splitTarget(u));
    if (u === '*' && extra.requestTarget === undefined) extra = { ...extra, requestTarget: '*' };
  } else {
    // Characters that cannot travel on the wire as they are: use the form a
    // WHATWG client (fetch) would actually send.
    if (NEEDS_WHATWG_RE.test(u)) u = new URL(u).href;
    const m = ABSOLUTE_URL_RE.exec(u);
    if (!m) throw new TypeError(`signet: request url must be absolute: ${JSON.stringify(u)}`);
    scheme = m[1].toLowerCase();
    authority = normalizeAuthority(m[2], scheme);
    path = m[3];
    query = m[4] === undefined ? null : m[4];
  }
  const target = (path === '' ? '/' : path) + (query === null ? '' : `?${query}`);
  return {
    kind: /** @type {const} */ ('request'),
    method,
    scheme,
    authority,
    path,
    query,
    requestTarget: extra.requestTarget === undefined ? target : String(extra.requestTarget),
    fields,
    trailers: extra.trailers ? fieldTable(extra.trailers) : null,
    body,
    source,
    original,
  };
}

/**
 * @param {unknown} status
 * @param {Map<string, string[]>} fields
 * @param {unknown} body
 * @param {'whatwg'|'node'|'plain'} source
 * @param {any} original
 * @param {FieldsInput} [trailers]
 * @returns {Message}
 */
function responseMessage(status, fields, body, source, original, trailers) {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 999) {
    throw new TypeError('signet: response status must be a 3-digit integer');
  }
  return {
    kind: /** @type {const} */ ('response'),
    status,
    fields,
    trailers: trailers ? fieldTable(trailers) : null,
    body,
    source,
    original,
  };
}

/**
 * Reduces any accepted message shape to a Message.
 * @param {any} input
 * @param {{ scheme?: string }} [options]  scheme of origin-form requests
 * @returns {Message}
 */
export function toMessage(input, options = {}) {
  if (input == null || typeof input !== 'object') throw new TypeError('signet: message must be an object');
  if (isWhatwgRequest(input)) {
    return requestMessage(input.method, input.url, fieldTable(input.headers), undefined, 'whatwg', input);
  }
  if (isWhatwgResponse(input)) {
    return responseMessage(input.status, fieldTable(input.headers), undefined, 'whatwg', input);
  }
  if (Array.isArray(input.rawHeaders)) {
    // node:http IncomingMessage: a server-side request, or a client-side response.
    const { map: fields, pseudo } = rawHeaderTable(input.rawHeaders);
    if (typeof input.statusCode === 'number' && !input.method) {
      return responseMessage(input.statusCode, fields, input, 'node', input);
    }
    const scheme = options.scheme || pseudo.get(':scheme') || (input.socket && input.socket.encrypted ? 'https' : 'http');
    let url = input.url;
    if (pseudo.has(':authority') && !fields.has('host') && String(url).startsWith('/')) {
      url = `${scheme}://${pseudo.get(':authority')}${url}`;
    }
    return requestMessage(input.method, url, fields, input, 'node', input, { scheme });
  }
  const fields = fieldTable(input.headers);
  if (input.method === undefined && input.status !== undefined) {
    return responseMessage(input.status, fields, input.body, 'plain', input, input.trailers);
  }
  return requestMessage(input.method, input.url, fields, input.body, 'plain', input, {
    scheme: input.scheme || options.scheme,
    requestTarget: input.requestTarget,
    trailers: input.trailers,
  });
}

/**
 * Returns the body as bytes when that needs no waiting: null for no body,
 * undefined when the body must be read asynchronously (a stream or Blob).
 * @param {unknown} body
 * @returns {Uint8Array|null|undefined}
 */
export function bodyBytesSync(body) {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') return utf8(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (typeof URLSearchParams !== 'undefined' && body instanceof URLSearchParams) return utf8(body.toString());
  return undefined;
}

/**
 * Reports whether body is a stream (ReadableStream or async iterable).
 * @param {any} body
 */
export function isStream(body) {
  return body != null && typeof body === 'object' &&
    (typeof body.getReader === 'function' || typeof body[Symbol.asyncIterator] === 'function');
}

/**
 * Reports whether body is a Blob, or anything else whose bytes come from
 * an arrayBuffer method.
 * @param {any} body
 * @returns {body is Blob}
 */
export function isBlob(body) {
  return body != null && typeof body === 'object' && typeof body.arrayBuffer === 'function' && !isStream(body);
}

/**
 * Visits the chunks of a ReadableStream or an async iterable, as bytes.
 * @param {any} stream
 * @param {(chunk: Uint8Array) => void} visit
 */
export async function eachChunk(stream, visit) {
  /** @param {unknown} c */
  const bytes = (c) => (typeof c === 'string' ? utf8(c) : bodyBytesSync(c));
  if (typeof stream.getReader === 'function') {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        const b = bytes(value);
        if (!b) throw new TypeError('signet: stream chunks must be bytes or strings');
        visit(b);
      }
    } finally {
      reader.releaseLock();
    }
  }
  for await (const chunk of stream) {
    const b = bytes(chunk);
    if (!b) throw new TypeError('signet: stream chunks must be bytes or strings');
    visit(b);
  }
}

/**
 * Reads a body of any accepted kind into bytes (null when there is none).
 * @param {any} body
 * @returns {Promise<Uint8Array|null>}
 */
export async function readBody(body) {
  const sync = bodyBytesSync(body);
  if (sync !== undefined) return sync;
  if (isBlob(body)) return new Uint8Array(await body.arrayBuffer());
  if (isStream(body)) {
    /** @type {Uint8Array[]} */
    const chunks = [];
    await eachChunk(body, (c) => chunks.push(c));
    return concat(chunks);
  }
  throw new TypeError('signet: unsupported body type; use a string, bytes, Blob or stream');
}

/**
 * The body bytes of a message (null when it has none). A WHATWG Request or
 * Response is cloned first, so the original stays readable.
 * @param {Message} message
 * @returns {Promise<Uint8Array|null>}
 */
export async function messageBody(message) {
  if (message.source === 'whatwg') {
    const o = message.original;
    if (o.body === null) return null;
    return new Uint8Array(await o.clone().arrayBuffer());
  }
  return readBody(message.body);
}
