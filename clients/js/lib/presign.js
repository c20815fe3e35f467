// Presigned URLs (docs/presigned-urls.md): an RFC 9421 signature carried in
// the query of the URL it signs, for clients that cannot add header fields
// (a browser's <img>, <a href> or WebSocket). The same inputs give the same
// URL, byte for byte, as the Go package and the signet CLI.

import { sign } from './sign.js';

/** The query parameter holding the Signature-Input member. */
export const PRESIGN_INPUT_PARAM = 'signet-input';
/** The query parameter holding the Signature member. */
export const PRESIGN_SIGNATURE_PARAM = 'signet-sig';
/** The tag of every presigned signature. */
export const PRESIGN_TAG = 'signet-presign';

const COMPONENTS = ['@method', '@authority', '@path', '@query'];

/**
 * Options of presign.
 * @typedef {object} PresignOptions
 * @property {string} keyId
 * @property {import('./keys.js').KeyMaterial} key  a secret or a private key
 * @property {import('./keys.js').Algorithm} [alg]  inferred from the key when omitted
 * @property {number} expiresIn  how long the URL stays valid, in seconds (rounded up); required
 * @property {string} [method]  the one method the URL serves; default "GET"
 * @property {boolean} [singleUse]  add a nonce: a server with a replay cache accepts the URL once
 * @property {string} [nonce]  the nonce of a single-use URL (default: 128 random bits), for reproducible URLs
 * @property {number | Date} [created]  Unix seconds or a Date; default now
 * @property {string} [label]  default "sig1"
 * @property {boolean} [includeAlg]  whether to send the `alg` parameter; default true
 */

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Percent-encodes every byte but the unreserved ones, with upper-case hex:
 * the one encoding every implementation writes.
 * @param {string} s  ASCII
 */
function escape(s) {
  let out = '';
  for (const c of s) {
    if (UNRESERVED.test(c)) {
      out += c;
      continue;
    }
    const code = c.charCodeAt(0);
    if (code > 0x7f) throw new TypeError('signet: a signature field is not ASCII');
    out += `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The index of the first character of s a client would send otherwise
 * than written, or -1: unreserved characters, sub-delimiters, ":", "@",
 * "/" and %XX escapes pass; in a query "?" too, but not "'", which
 * browsers escape there.
 * @param {string} s
 * @param {boolean} query
 */
function badTargetChar(s, query) {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (UNRESERVED.test(c)) continue;
    if (c === '%') {
      if (!/^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) return i;
      i += 2;
      continue;
    }
    if (c === "'") {
      if (query) return i;
      continue;
    }
    if ("!$&()*+,;=:@/".includes(c)) continue;
    if (c === '?' && query) continue;
    return i;
  }
  return -1;
}

/**
 * Decodes application/x-www-form-urlencoded text ("+" is a space, %XX a
 * byte), or returns null when a "%" has no two hex digits after it.
 * @param {string} s
 */
function formDecode(s) {
  if (/%(?![0-9A-Fa-f]{2})/.test(s)) return null;
  const bytes = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '+') bytes.push(0x20);
    else if (c === '%') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...new TextEncoder().encode(c));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * Whether a query parameter name is one of the two, in any spelling a
 * server might read as it (escaped, or in other letter case).
 * @param {string} name
 */
function isPresignName(name) {
  const decoded = /[%+]/.test(name) ? formDecode(name) : name;
  if (decoded === null) return false;
  const lower = decoded.toLowerCase();
  return lower === PRESIGN_INPUT_PARAM || lower === PRESIGN_SIGNATURE_PARAM;
}

/**
 * Returns url with a signature in its query, as the presigned-URL profile
 * specifies: the parameters signet-input and signet-sig are appended, the
 * query otherwise kept byte for byte, as is the rest of the URL. The
 * signature covers @method, @authority, @path and @query (the query
 * without the two parameters), with the parameters created, keyid, alg,
 * a nonce for a single-use URL, expires and tag "signet-presign".
 *
 * url must be an absolute http or https URL without user information,
 * whose path and query are written the way every client sends them
 * (unreserved characters, sub-delimiters, ":", "@", "/", %XX; no "." or
 * ".." path segment; no "'" in the query); anything else is refused with
 * a TypeError saying what to percent-encode.
 * @param {string | URL} url
 * @param {PresignOptions} options
 * @returns {Promise<string>}
 */
export async function presign(url, options) {
  if (!options || typeof options !== 'object') throw new TypeError('signet: presign needs options');
  const { expiresIn } = options;
  if (typeof expiresIn !== 'number' || !(expiresIn > 0) || !Number.isFinite(expiresIn)) {
    throw new TypeError('signet: presign needs expiresIn, a positive number of seconds');
  }
  const method = options.method === undefined ? 'GET' : options.method;
  if (!/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(method)) throw new TypeError(`signet: ${JSON.stringify(method)} is not an HTTP method`);
  if (options.nonce !== undefined && !options.singleUse) throw new TypeError('signet: a nonce is for a single-use URL');

  const raw = String(url);
  const m = /^(https?):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/i.exec(raw);
  if (!m) throw new TypeError(`signet: ${JSON.stringify(raw)} is not an absolute http or https URL`);
  const [, scheme, authority, path, query, fragment] = m;
  if (authority.includes('@')) throw new TypeError('signet: a presigned URL cannot carry user information (user@host): clients do not send it');
  if (authority === '' || !/^[A-Za-z0-9\-._~:[\]]+$/.test(authority)) {
    throw new TypeError(`signet: the host ${JSON.stringify(authority)} is not one clients send as written`);
  }
  let i = badTargetChar(path, false);
  if (i >= 0) throw new TypeError(`signet: the path has ${JSON.stringify(path[i])} at ${i}, which clients send differently; percent-encode it`);
  for (const seg of path.split('/')) {
    const s = seg.replace(/%2e/gi, '.');
    if (s === '.' || s === '..') throw new TypeError(`signet: the path has a ${JSON.stringify(seg)} segment, which browsers resolve before sending`);
  }
  const hasQuery = query !== undefined;
  if (hasQuery) {
    i = badTargetChar(query, true);
    if (i >= 0) throw new TypeError(`signet: the query has ${JSON.stringify(query[i])} at ${i}, which clients send differently; percent-encode it`);
    for (const piece of query.split('&')) {
      if (isPresignName(piece.split('=')[0])) {
        throw new TypeError(`signet: the URL already has a ${PRESIGN_INPUT_PARAM} or ${PRESIGN_SIGNATURE_PARAM} parameter`);
      }
    }
  }

  const created = options.created === undefined ? Math.floor(Date.now() / 1000)
    : options.created instanceof Date ? Math.floor(options.created.getTime() / 1000) : options.created;
  const target = `${scheme.toLowerCase()}://${authority}${path || '/'}${hasQuery ? `?${query}` : ''}`;
  const signed = await sign({ method, url: target, headers: [] }, {
    keyId: options.keyId,
    key: options.key,
    alg: options.alg,
    label: options.label,
    components: COMPONENTS,
    created,
    expires: created + Math.ceil(expiresIn),
    nonce: options.singleUse ? options.nonce : false,
    tag: PRESIGN_TAG,
    includeAlg: options.includeAlg,
  });
  const before = fragment === undefined ? raw : raw.slice(0, raw.length - fragment.length);
  const sep = !hasQuery ? '?' : query === '' ? '' : '&';
  return `${before}${sep}${PRESIGN_INPUT_PARAM}=${escape(signed.headers['Signature-Input'])}` +
    `&${PRESIGN_SIGNATURE_PARAM}=${escape(signed.headers.Signature)}${fragment === undefined ? '' : fragment}`;
}
