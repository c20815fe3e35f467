// Signing (RFC 9421 §3.1) with the Signet default profile.

import { base64, base64url, latin1 } from './bytes.js';
import { buildBase, parseComponent, serializeSignatureParams } from './components.js';
import { contentDigestOf } from './digest.js';
import { importKey } from './keys.js';
import { bodyBytesSync, isStream, messageBody, readBody, toMessage } from './message.js';
import * as sf from './sf.js';

/**
 * Options of sign.
 * @typedef {object} SignOptions
 * @property {string} keyId  the key id, sent as the `keyid` parameter
 * @property {import('./keys.js').KeyMaterial} key  a secret or a private key
 * @property {import('./keys.js').Algorithm} [alg]  inferred from the key when omitted (see importKey)
 * @property {string} [label]  the signature label; default "sig1"
 * @property {string[]} [components]  the covered components, in order,
 *   replacing the default profile: serialized component identifiers
 *   (`"@query-param";name="id"`, `"example-dict";key="a"`) or bare names
 *   (`@method`, `content-type`; field names are lower-cased). A non-empty
 *   body always gets a fresh Content-Digest, covered or not. The default
 *   profile, those that apply, in this order: `@method` `@authority`
 *   `@path`; `@query` when the query is non-empty; `content-type` when
 *   present; `content-digest` when the body is non-empty (or the message
 *   carries Content-Digest). For a response: `@status`, then the same two
 *   fields.
 * @property {number | Date | false} [created]  Unix seconds or a Date; default now; false leaves it out
 * @property {number | Date} [expires]  Unix seconds or a Date
 * @property {number} [expiresIn]  sets `expires` this many seconds after `created` (when `expires` is not given)
 * @property {string | false} [nonce]  default a fresh generateNonce(); false leaves it out
 * @property {string} [tag]
 * @property {boolean} [includeAlg]  whether to send the `alg` parameter; default true
 * @property {import('./digest.js').DigestAlgorithm} [digestAlgorithm]  for Content-Digest; default "sha-256"
 * @property {import('./message.js').BodyInput} [body]  the body to sign, when it is not (or no longer) in the message
 * @property {import('./message.js').MessageInput} [request]  the request a response answers, for components with `req`
 * @property {string} [scheme]  of origin-form requests; default "https"
 * @property {Record<string, import('./sf.js').FieldType>} [structuredFields]  top-level types of
 *   structured fields this package does not know, for the `sf` parameter: `{ "example-dict": "dictionary" }`
 */

/**
 * What sign returns.
 * @typedef {object} SignResult
 * @property {{ 'Content-Digest'?: string, 'Signature-Input': string, Signature: string }} headers
 *   the fields to set on the message, replacing any of the same name:
 *   Content-Digest (when the body is not empty), Signature-Input and
 *   Signature (which hold the message's earlier signatures too, if any)
 * @property {string} base  the signature base that was signed, for debugging
 * @property {string} label
 * @property {string} signatureParams  the `@signature-params` value: the Signature-Input member of this signature
 * @property {Uint8Array} signature  the raw signature
 */

const noncePool = new Uint8Array(4096);
let noncePos = noncePool.length;

/**
 * A fresh nonce: 16 random bytes, base64url without padding.
 * @returns {string}
 */
export function generateNonce() {
  // Random bytes are drawn in batches (one system call per 256 nonces); each
  // byte of the pool is used once.
  if (noncePos + 16 > noncePool.length) {
    globalThis.crypto.getRandomValues(noncePool);
    noncePos = 0;
  }
  const nonce = base64url(noncePool.subarray(noncePos, noncePos + 16));
  noncePos += 16;
  return nonce;
}

/**
 * Converts a Date or Unix seconds to Unix seconds.
 * @param {unknown} t
 * @param {string} what
 * @returns {number}
 */
function unixSeconds(t, what) {
  const s = t instanceof Date ? Math.floor(t.getTime() / 1000) : t;
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) {
    throw new TypeError(`signet: ${what} must be a Date or a non-negative integer of Unix seconds`);
  }
  return s;
}

/**
 * The signature base as bytes. Field values are byte strings (one char per
 * octet, as node:http and fetch hold them), so the base is encoded as Latin-1.
 * @param {string} base
 */
export function baseBytes(base) {
  if (/[^\x00-\xff]/.test(base)) throw new TypeError('signet: a component value has a character above U+00FF; field values must be byte strings');
  return latin1(base);
}

/**
 * The components of the default profile, in order: "@method" "@authority"
 * "@path", "@query" when the query is non-empty, "content-type" when
 * present, "content-digest" when there is content (or a Content-Digest
 * field). For a response: "@status", then the same two fields.
 * @param {import('./message.js').Message} message
 * @param {boolean} hasContent
 * @returns {import('./components.js').Component[]}
 */
export function defaultComponents(message, hasContent) {
  const names = message.kind === 'response' ? ['@status'] : ['@method', '@authority', '@path'];
  if (message.kind === 'request' && message.query) names.push('@query');
  if (message.fields.has('content-type')) names.push('content-type');
  if (hasContent) names.push('content-digest');
  return names.map((n) => /** @type {import('./components.js').Component} */ (DEFAULTS.get(n)));
}

const DEFAULTS = new Map(
  ['@method', '@authority', '@path', '@query', '@status', 'content-type', 'content-digest'].map((n) => [n, Object.freeze(parseComponent(n))]),
);

/** @param {unknown} list */
function toComponents(list) {
  if (!Array.isArray(list)) throw new TypeError('signet: components must be an array of component identifiers');
  return list.map((c) => {
    if (typeof c !== 'string') throw new TypeError('signet: components must be strings');
    return parseComponent(c);
  });
}

/**
 * @param {import('./message.js').Message} message
 * @param {SignOptions} options
 * @returns {Promise<Uint8Array | null | undefined>}
 */
async function signingBody(message, options) {
  if (options.body !== undefined) return readBody(options.body);
  if (message.source === 'whatwg') return messageBody(message);
  const sync = bodyBytesSync(message.body);
  if (sync !== undefined) return sync;
  // A stream cannot be read without consuming it: the caller must have set
  // Content-Digest, and we sign that value as it is.
  if (isStream(message.body)) return undefined;
  return readBody(message.body);
}

/**
 * @param {string[] | undefined} existing
 * @param {string} label
 * @param {string} ours
 * @param {string} name
 */
function mergeSignatureField(existing, label, ours, name) {
  if (!existing) return ours;
  const combined = existing.join(', ');
  let dict;
  try {
    dict = sf.parseDictionary(combined);
  } catch (err) {
    throw new TypeError(`signet: the message's ${name} field is malformed: ${err.message}`);
  }
  if (dict.has(label)) throw new TypeError(`signet: the message already has a signature labelled ${label}`);
  return dict.size === 0 ? ours : `${combined}, ${ours}`;
}

/**
 * Signs a request (or a response) with the Signet default profile, or the
 * components given, and returns the fields to set on it. Computes
 * Content-Digest for a non-empty body; a stream body can only be signed
 * through a Content-Digest the caller set (or with explicit components).
 * @param {import('./message.js').MessageInput} input
 * @param {SignOptions} options
 * @returns {Promise<SignResult>}
 */
export async function sign(input, options) {
  if (!options || typeof options !== 'object') throw new TypeError('signet: sign needs options');
  if (options.keyId === undefined || options.keyId === null) throw new TypeError('signet: sign needs keyId');
  if (options.key === undefined || options.key === null) throw new TypeError('signet: sign needs key');
  const key = await importKey(options.key, options.alg);
  if (!key.canSign) throw new TypeError('signet: sign needs a secret or private key, not a public key');
  const label = options.label === undefined ? 'sig1' : options.label;
  if (!sf.isKey(label)) throw new TypeError(`signet: invalid label ${JSON.stringify(label)} (lower-case letters, digits, "_", "-", ".", "*")`);

  let message = toMessage(input, { scheme: options.scheme });
  const request = options.request === undefined ? undefined : toMessage(options.request, { scheme: options.scheme });
  const body = await signingBody(message, options);
  if (body === undefined && options.components === undefined && !message.fields.has('content-digest')) {
    throw new TypeError('signet: cannot digest a stream body without consuming it; set Content-Digest first (see contentDigest) or pass the bytes');
  }
  const hasContent = body !== undefined && body !== null && body.length > 0;

  /** @type {{ 'Content-Digest'?: string, 'Signature-Input': string, Signature: string }} */
  const headers = /** @type {any} */ ({});
  if (hasContent) {
    // Content always gets a fresh Content-Digest (replacing one the message
    // may carry), whether or not the components cover it.
    const value = await contentDigestOf(body, options.digestAlgorithm || 'sha-256');
    headers['Content-Digest'] = value;
    const fields = new Map(message.fields);
    fields.set('content-digest', [value]);
    message = { ...message, fields };
  }
  const components = options.components === undefined
    ? defaultComponents(message, hasContent || message.fields.has('content-digest'))
    : toComponents(options.components);

  /** @type {Array<[string, string | number]>} */
  const params = [];
  /** @type {number | undefined} */
  let created;
  if (options.created !== false && options.created !== null) {
    created = options.created === undefined ? Math.floor(Date.now() / 1000) : unixSeconds(options.created, 'created');
    params.push(['created', created]);
  }
  params.push(['keyid', String(options.keyId)]);
  if (options.includeAlg !== false) params.push(['alg', key.alg]);
  if (options.nonce !== false && options.nonce !== null) {
    params.push(['nonce', options.nonce === undefined ? generateNonce() : String(options.nonce)]);
  }
  if (options.expires !== undefined && options.expires !== null) {
    params.push(['expires', unixSeconds(options.expires, 'expires')]);
  } else if (options.expiresIn !== undefined && options.expiresIn !== null) {
    const from = created === undefined ? Math.floor(Date.now() / 1000) : created;
    params.push(['expires', unixSeconds(from + options.expiresIn, 'expiresIn')]);
  }
  if (options.tag !== undefined && options.tag !== null) params.push(['tag', String(options.tag)]);

  let signatureParams;
  try {
    signatureParams = serializeSignatureParams(components, params);
  } catch (err) {
    throw new TypeError(`signet: ${err.message}`);
  }
  const base = buildBase(message, components, signatureParams, { request, structuredFields: options.structuredFields });
  const signature = await key.sign(baseBytes(base));
  headers['Signature-Input'] = mergeSignatureField(message.fields.get('signature-input'), label, `${label}=${signatureParams}`, 'Signature-Input');
  headers.Signature = mergeSignatureField(message.fields.get('signature'), label, `${label}=:${base64(signature)}:`, 'Signature');
  return { headers, base, label, signatureParams, signature };
}
