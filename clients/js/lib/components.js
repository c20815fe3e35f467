// Component identifiers, component values and the signature base
// (RFC 9421 §2).

import * as sf from './sf.js';
import { base64, latin1, utf8 } from './bytes.js';
import { refuse, Reason } from './errors.js';

/**
 * A parsed component identifier.
 * @typedef {object} Component
 * @property {string} name                    e.g. "@method", "content-type"
 * @property {Map<string, sf.BareItem>} params in received order
 * @property {string} id                      serialized identifier, e.g. `"@query-param";name="Pet"`
 * @property {string} canonical               id with sorted parameters, for duplicate detection
 */

/**
 * @typedef {object} BaseOptions
 * @property {import('./message.js').Message} [request]  the request a response answers
 * @property {Record<string, sf.FieldType>} [structuredFields]
 */

const DERIVED = new Set([
  '@method', '@target-uri', '@authority', '@scheme', '@request-target',
  '@path', '@query', '@query-param', '@status',
]);
const FIELD_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FLAG_PARAMS = new Set(['sf', 'bs', 'req', 'tr']);

// Known structured fields and their top-level types (the same table as the
// Go package's). Others need a type from the caller for "sf"; "key" always
// parses a Dictionary.
/** @type {Record<string, sf.FieldType>} */
const STRUCTURED_FIELDS = {
  'accept-ch': 'list',
  'accept-signature': 'dictionary',
  'cache-groups': 'list',
  'cache-status': 'list',
  'capsule-protocol': 'item',
  'cdn-cache-control': 'dictionary',
  'client-cert': 'item',
  'client-cert-chain': 'list',
  'content-digest': 'dictionary',
  'cross-origin-embedder-policy': 'item',
  'cross-origin-opener-policy': 'item',
  'origin-agent-cluster': 'item',
  priority: 'dictionary',
  'proxy-status': 'list',
  'repr-digest': 'dictionary',
  'reporting-endpoints': 'dictionary',
  signature: 'dictionary',
  'signature-input': 'dictionary',
  'want-content-digest': 'dictionary',
  'want-repr-digest': 'dictionary',
};

/** @param {string} detail */
function malformed(detail) {
  return refuse(Reason.MalformedSignature, detail);
}

/** @param {string} detail */
function missing(detail) {
  return refuse(Reason.MissingComponent, detail);
}

/**
 * Validates a parsed sf Item as a component identifier (RFC 9421 §2):
 * known derived names, lower-case field names, known parameters only.
 * Throws a SignatureError (malformed-signature) otherwise.
 * @param {{ value: unknown, params?: Map<string, sf.BareItem> }} item
 * @returns {Component}
 */
export function componentFromItem(item) {
  const name = item.value;
  if (typeof name !== 'string') throw malformed('component identifier is not a string');
  const params = item.params || new Map();
  if (name.startsWith('@')) {
    if (name === '@signature-params') throw malformed('"@signature-params" cannot be a covered component');
    if (!DERIVED.has(name)) throw malformed(`unknown derived component ${JSON.stringify(name)}`);
    for (const [k, v] of params) {
      if (k === 'req') {
        if (v !== true) throw malformed(`parameter "req" of ${name} must be true`);
      } else if (k === 'name' && name === '@query-param') {
        if (typeof v !== 'string') throw malformed('parameter "name" of "@query-param" must be a string');
      } else {
        throw malformed(`parameter ${JSON.stringify(k)} is not allowed on ${name}`);
      }
    }
    if (name === '@query-param' && !params.has('name')) throw malformed('"@query-param" needs a "name" parameter');
    if (name === '@status' && params.has('req')) throw malformed('"@status";req names nothing: a request has no status');
  } else {
    if (!FIELD_NAME_RE.test(name)) throw malformed(`invalid component name ${JSON.stringify(name)} (field names are lower-case tokens)`);
    for (const [k, v] of params) {
      if (FLAG_PARAMS.has(k)) {
        if (v !== true) throw malformed(`parameter ${JSON.stringify(k)} of ${JSON.stringify(name)} must be true`);
      } else if (k === 'key') {
        if (typeof v !== 'string') throw malformed(`parameter "key" of ${JSON.stringify(name)} must be a string`);
      } else {
        throw malformed(`unknown component parameter ${JSON.stringify(k)} on ${JSON.stringify(name)}`);
      }
    }
    if (params.has('bs') && (params.has('sf') || params.has('key'))) {
      throw malformed(`"bs" cannot be combined with "sf" or "key" on ${JSON.stringify(name)}`);
    }
  }
  if (params.size === 0) {
    // Valid names need no escaping.
    const id = `"${name}"`;
    return { name, params, id, canonical: id };
  }
  const id = sf.serializeItem({ value: name, params });
  const sorted = [...params].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { name, params, id, canonical: sf.serializeItem({ value: name, params: sorted }) };
}

/**
 * Parses a component identifier written by a caller: either its
 * serialization (`"@query-param";name="id"`, `"example-dict";key="a"`) or a
 * bare name (`@method`, `Content-Type`; field names are lower-cased).
 * @param {string} text
 * @returns {Component}
 */
export function parseComponent(text) {
  if (typeof text !== 'string' || text === '') throw new TypeError('signet: component identifier must be a non-empty string');
  if (text.startsWith('"')) {
    let item;
    try {
      item = sf.parseItem(text);
    } catch (err) {
      throw new TypeError(`signet: invalid component identifier ${text}: ${err.message}`);
    }
    return componentFromItem(item);
  }
  const name = text.startsWith('@') ? text : text.toLowerCase();
  return componentFromItem({ value: name, params: new Map() });
}

/**
 * RFC 9421 §2.1: OWS stripped, obs-fold replaced by one SP. A value that
 * still holds CR, LF or NUL could forge lines of the signature base.
 * @param {string} v
 * @param {string} name
 */
function cleanFieldValue(v, name) {
  const unfolded = v.replace(/[ \t]*\r?\n[ \t]+/g, ' ').replace(/^[ \t]+|[ \t]+$/g, '');
  if (/[\r\n\0]/.test(unfolded)) throw malformed(`field ${JSON.stringify(name)} holds CR, LF or NUL`);
  return unfolded;
}

/**
 * @param {string} name
 * @param {Record<string, sf.FieldType> | undefined} types
 * @returns {sf.FieldType | undefined}
 */
function structuredType(name, types) {
  if (types && Object.prototype.hasOwnProperty.call(types, name)) return types[name];
  return Object.prototype.hasOwnProperty.call(STRUCTURED_FIELDS, name) ? STRUCTURED_FIELDS[name] : undefined;
}

/**
 * @param {import('./message.js').Message} message
 * @param {Component} comp
 * @param {BaseOptions} options
 */
function fieldValue(message, comp, options) {
  const table = comp.params.has('tr') ? message.trailers : message.fields;
  const where = comp.params.has('tr') ? 'trailer' : 'field';
  const lines = table ? table.get(comp.name) : undefined;
  if (!lines) throw missing(`${where} ${JSON.stringify(comp.name)} is not in the message`);
  const cleaned = lines.map((v) => cleanFieldValue(v, comp.name));
  if (comp.params.has('bs')) {
    return cleaned.map((v) => `:${base64(latin1(v))}:`).join(', ');
  }
  const combined = cleaned.join(', ');
  if (!comp.params.has('key') && !comp.params.has('sf')) return combined;
  let type = structuredType(comp.name, options.structuredFields);
  if (comp.params.has('key')) {
    if (type !== undefined && type !== 'dictionary') throw malformed(`${comp.id}: the key parameter needs a Dictionary field`);
    type = 'dictionary';
  }
  if (type === undefined) {
    throw malformed(`${comp.id}: the structured type of this field is not known (see the structuredFields option)`);
  }
  let parsed;
  try {
    parsed = sf.parse(combined, type);
  } catch (err) {
    throw malformed(`${comp.id}: the field is not a valid structured field: ${err.message}`);
  }
  if (!comp.params.has('key')) return sf.serialize(parsed, type);
  const member = /** @type {sf.Dictionary} */ (parsed).get(/** @type {string} */ (comp.params.get('key')));
  if (!member) throw missing(`${comp.id}: the dictionary has no member ${JSON.stringify(comp.params.get('key'))}`);
  return sf.serializeItem(member);
}

/**
 * WHATWG application/x-www-form-urlencoded parsing (URL Standard §5.1).
 * @param {string} s
 */
function formDecode(s) {
  const plus = s.replace(/\+/g, ' ');
  if (!plus.includes('%')) return plus;
  const src = utf8(plus);
  const out = new Uint8Array(src.length);
  let n = 0;
  /** @param {number} c */
  const hex = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x25 && i + 2 < src.length && hex(src[i + 1]) && hex(src[i + 2])) {
      out[n++] = parseInt(String.fromCharCode(src[i + 1], src[i + 2]), 16);
      i += 2;
    } else {
      out[n++] = c;
    }
  }
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(out.subarray(0, n));
}

/**
 * Parses a raw query string (without "?") into [name, value] pairs with the
 * WHATWG application/x-www-form-urlencoded parser.
 * @param {string} query
 * @returns {Array<[string, string]>}
 */
export function parseQuery(query) {
  /** @type {Array<[string, string]>} */
  const out = [];
  for (const seq of query.split('&')) {
    if (seq === '') continue;
    const eq = seq.indexOf('=');
    const name = eq >= 0 ? seq.slice(0, eq) : seq;
    const value = eq >= 0 ? seq.slice(eq + 1) : '';
    out.push([formDecode(name), formDecode(value)]);
  }
  return out;
}

/**
 * Percent-encodes a decoded query name or value for "@query-param" (RFC 9421
 * §2.2.8): every UTF-8 byte except ASCII alphanumerics and "*-._" becomes
 * %XX with upper-case hex; space becomes %20.
 * @param {string} s
 */
export function encodeQueryPart(s) {
  let out = '';
  for (const b of utf8(s)) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
        b === 0x2a || b === 0x2d || b === 0x2e || b === 0x5f) {
      out += String.fromCharCode(b);
    } else {
      out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
    }
  }
  return out;
}

/**
 * @param {import('./message.js').Message} message
 * @param {Component} comp
 * @returns {string[]}
 */
function derivedValues(message, comp) {
  const name = comp.name;
  if (name === '@status') {
    if (message.kind !== 'response') throw malformed('a request has no "@status"');
    return [String(message.status)];
  }
  if (message.kind !== 'request') throw malformed(`a response has no ${name}; use the req parameter`);
  switch (name) {
    case '@method':
      return [message.method];
    case '@target-uri':
      return [`${message.scheme}://${message.authority}${message.path === '' ? '/' : message.path}${message.query === null ? '' : `?${message.query}`}`];
    case '@authority':
      return [message.authority];
    case '@scheme':
      return [message.scheme];
    case '@request-target':
      return [message.requestTarget];
    case '@path':
      return [message.path === '' ? '/' : message.path];
    case '@query':
      return [`?${message.query === null ? '' : message.query}`];
    case '@query-param': {
      const wanted = comp.params.get('name');
      const values = [];
      for (const [n, v] of parseQuery(message.query || '')) {
        if (encodeQueryPart(n) === wanted) values.push(encodeQueryPart(v));
      }
      if (values.length === 0) throw missing(`query parameter ${JSON.stringify(wanted)} is not in the request`);
      return values;
    }
    default:
      throw malformed(`unknown derived component ${JSON.stringify(name)}`);
  }
}

/**
 * The values of one component (several for a repeated "@query-param").
 * @param {import('./message.js').Message} message
 * @param {Component} comp
 * @param {BaseOptions} [options]
 * @returns {string[]}
 */
export function componentValues(message, comp, options = {}) {
  let target = message;
  if (comp.params.has('req')) {
    if (message.kind !== 'response') throw malformed(`${comp.id}: "req" is only meaningful on a response`);
    if (!options.request) throw missing(`${comp.id} needs the request that the response answers`);
    target = options.request;
  }
  if (comp.name.startsWith('@')) {
    const values = derivedValues(target, comp);
    for (const v of values) {
      if (/[\r\n\0]/.test(v)) throw malformed(`${comp.id} holds CR, LF or NUL`);
    }
    return values;
  }
  return [fieldValue(target, comp, options)];
}

/**
 * Builds the signature base (RFC 9421 §2.5).
 * @param {import('./message.js').Message} message
 * @param {Component[]} components
 * @param {string} signatureParams  serialized "@signature-params" value
 * @param {BaseOptions} [options]
 * @returns {string}
 */
export function buildBase(message, components, signatureParams, options = {}) {
  const seen = new Set();
  let base = '';
  for (const comp of components) {
    if (seen.has(comp.canonical)) throw malformed(`duplicate component ${comp.id}`);
    seen.add(comp.canonical);
    for (const v of componentValues(message, comp, options)) base += `${comp.id}: ${v}\n`;
  }
  return `${base}"@signature-params": ${signatureParams}`;
}

/**
 * Serializes the "@signature-params" value: the inner list of component
 * identifiers with the signature parameters, in the given order.
 * @param {Component[]} components
 * @param {Iterable<[string, unknown]>} params
 */
export function serializeSignatureParams(components, params) {
  // A component's id is its serialization as an inner-list item.
  return `(${components.map((c) => c.id).join(' ')})${sf.serializeParams(params)}`;
}
