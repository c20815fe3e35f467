// Structured Field Values for HTTP, as specified in RFC 8941: strict parsing
// (anything the grammar rejects is a SyntaxError) and canonical serialization.
//
// Data model:
//   bare item   string | boolean | number (Integer, or Decimal when not an
//               integer) | Decimal | Token | Uint8Array (Byte Sequence)
//   parameters  Map<key, bare item>, in received order
//   item        { value: bare item, params }
//   inner list  { value: item[], params }
//   list        Array<item | inner list>
//   dictionary  Map<key, item | inner list>

import { base64, fromBase64 } from './bytes.js';

/**
 * @typedef {string | boolean | number | Decimal | Token | Uint8Array} BareItem
 *   number is an Integer, or a Decimal when it is not an integer
 * @typedef {Map<string, BareItem>} Parameters  in received order
 * @typedef {{ value: BareItem, params: Parameters }} Item
 * @typedef {{ value: Item[], params: Parameters }} InnerList
 * @typedef {Item | InnerList} Member
 * @typedef {Member[]} List
 * @typedef {Map<string, Member>} Dictionary
 * @typedef {'list' | 'dictionary' | 'item'} FieldType
 * @typedef {{ value: unknown, params?: Iterable<[string, unknown]> }} SerializableMember
 *   an item or inner list to serialize: value a bare item or an array of these
 * @typedef {(key: string, at: number) => void} OnDuplicate
 */

/** A Token (RFC 8941 §3.3.4), kept apart from String. */
export class Token {
  /** @param {string} value */
  constructor(value) {
    this.value = String(value);
  }

  toString() {
    return this.value;
  }
}

/**
 * A Decimal (RFC 8941 §3.3.2). Parsed decimals always come back as Decimal,
 * so that `2.0` serializes as `2.0` and not as the Integer `2`.
 */
export class Decimal {
  /** @param {number} value */
  constructor(value) {
    this.value = Number(value);
  }

  valueOf() {
    return this.value;
  }
}

const MAX_INTEGER = 999_999_999_999_999;

// Character classes over ASCII code units.
/** @param {number} c */
const isDigit = (c) => c >= 0x30 && c <= 0x39;
/** @param {number} c */
const isLcAlpha = (c) => c >= 0x61 && c <= 0x7a;
/** @param {number} c */
const isAlpha = (c) => isLcAlpha(c) || (c >= 0x41 && c <= 0x5a);
const TCHAR_EXTRA = new Set("!#$%&'*+-.^_`|~".split('').map((ch) => ch.charCodeAt(0)));
/** @param {number} c */
const isTchar = (c) => isAlpha(c) || isDigit(c) || TCHAR_EXTRA.has(c);
/** @param {number} c */
const isKeyChar = (c) => isLcAlpha(c) || isDigit(c) || c === 0x5f || c === 0x2d || c === 0x2e || c === 0x2a;

const KEY_RE = /^[a-z*][a-z0-9_\-.*]*$/;
const TOKEN_RE = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;
const STRING_RE = /^[\x20-\x7e]*$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

class Parser {
  /** @param {string} input */
  constructor(input) {
    if (typeof input !== 'string') throw new TypeError('structured field: input must be a string');
    // RFC 8941 §4.2: the field value must convert to ASCII.
    if (/[^\x00-\x7f]/.test(input)) throw new SyntaxError('structured field: non-ASCII character');
    this.s = input;
    this.i = 0;
  }

  /**
   * @param {string} what
   * @returns {never}
   */
  fail(what) {
    throw new SyntaxError(`structured field: ${what} at offset ${this.i}`);
  }

  peek() {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }

  eof() {
    return this.i >= this.s.length;
  }

  skipSP() {
    while (this.peek() === 0x20) this.i++;
  }

  skipOWS() {
    for (let c = this.peek(); c === 0x20 || c === 0x09; c = this.peek()) this.i++;
  }

  /**
   * Top level (RFC 8941 §4.2): leading and trailing SP are discarded;
   * nothing else may be left over.
   * @template T
   * @param {() => T} parse
   * @returns {T}
   */
  top(parse) {
    this.skipSP();
    const out = parse();
    this.skipSP();
    if (!this.eof()) this.fail('unexpected character');
    return out;
  }

  /** @returns {List} */
  list() {
    /** @type {List} */
    const members = [];
    while (!this.eof()) {
      members.push(this.itemOrInnerList());
      this.skipOWS();
      if (this.eof()) return members;
      if (this.peek() !== 0x2c) this.fail('expected ","');
      this.i++;
      this.skipOWS();
      if (this.eof()) this.fail('trailing ","');
    }
    return members;
  }

  /**
   * @param {OnDuplicate} [onDuplicate]
   * @returns {Dictionary}
   */
  dictionary(onDuplicate) {
    /** @type {Dictionary} */
    const dict = new Map();
    while (!this.eof()) {
      const at = this.i;
      const key = this.key();
      let member;
      if (this.peek() === 0x3d) {
        this.i++;
        member = this.itemOrInnerList(onDuplicate);
      } else {
        member = { value: true, params: this.params(onDuplicate) };
      }
      if (dict.has(key) && onDuplicate) onDuplicate(key, at);
      dict.set(key, member);
      this.skipOWS();
      if (this.eof()) return dict;
      if (this.peek() !== 0x2c) this.fail('expected ","');
      this.i++;
      this.skipOWS();
      if (this.eof()) this.fail('trailing ","');
    }
    return dict;
  }

  /**
   * @param {OnDuplicate} [onDuplicate]
   * @returns {Member}
   */
  itemOrInnerList(onDuplicate) {
    return this.peek() === 0x28 ? this.innerList(onDuplicate) : this.item(onDuplicate);
  }

  /**
   * @param {OnDuplicate} [onDuplicate]
   * @returns {InnerList}
   */
  innerList(onDuplicate) {
    this.i++; // "("
    /** @type {Item[]} */
    const items = [];
    while (!this.eof()) {
      this.skipSP();
      if (this.peek() === 0x29) {
        this.i++;
        return { value: items, params: this.params(onDuplicate) };
      }
      items.push(this.item(onDuplicate));
      const c = this.peek();
      if (c !== 0x20 && c !== 0x29) this.fail('expected SP or ")" in inner list');
    }
    return this.fail('unterminated inner list');
  }

  /**
   * @param {OnDuplicate} [onDuplicate]
   * @returns {Item}
   */
  item(onDuplicate) {
    const value = this.bareItem();
    return { value, params: this.params(onDuplicate) };
  }

  /**
   * @param {OnDuplicate} [onDuplicate]
   * @returns {Parameters}
   */
  params(onDuplicate) {
    /** @type {Parameters} */
    const params = new Map();
    while (this.peek() === 0x3b) {
      this.i++;
      this.skipSP();
      const at = this.i;
      const key = this.key();
      /** @type {BareItem} */
      let value = true;
      if (this.peek() === 0x3d) {
        this.i++;
        value = this.bareItem();
      }
      if (params.has(key) && onDuplicate) onDuplicate(key, at);
      params.set(key, value);
    }
    return params;
  }

  key() {
    const start = this.i;
    const c = this.peek();
    if (!isLcAlpha(c) && c !== 0x2a) this.fail('expected a key');
    this.i++;
    while (isKeyChar(this.peek())) this.i++;
    return this.s.slice(start, this.i);
  }

  /** @returns {BareItem} */
  bareItem() {
    const c = this.peek();
    if (c === 0x2d || isDigit(c)) return this.number();
    if (c === 0x22) return this.string();
    if (c === 0x2a || isAlpha(c)) return this.token();
    if (c === 0x3a) return this.byteSequence();
    if (c === 0x3f) return this.boolean();
    return this.fail('expected a bare item');
  }

  number() {
    let decimal = false;
    let sign = 1;
    if (this.peek() === 0x2d) {
      sign = -1;
      this.i++;
    }
    if (!isDigit(this.peek())) this.fail('expected a digit');
    const start = this.i;
    let dot = -1;
    while (!this.eof()) {
      const c = this.peek();
      if (isDigit(c)) {
        this.i++;
      } else if (!decimal && c === 0x2e) {
        if (this.i - start > 12) this.fail('decimal has too many integer digits');
        decimal = true;
        dot = this.i;
        this.i++;
      } else {
        break;
      }
      const len = this.i - start;
      if (!decimal && len > 15) this.fail('integer has too many digits');
      if (decimal && len > 16) this.fail('decimal has too many digits');
    }
    const text = this.s.slice(start, this.i);
    if (!decimal) return sign * Number(text) + 0;
    if (dot === this.i - 1) this.fail('decimal ends with "."');
    if (this.i - dot - 1 > 3) this.fail('decimal has too many fractional digits');
    return new Decimal(sign * Number(text) + 0);
  }

  string() {
    this.i++; // opening DQUOTE
    let out = '';
    let run = this.i;
    while (!this.eof()) {
      const c = this.s.charCodeAt(this.i);
      if (c === 0x5c) {
        out += this.s.slice(run, this.i);
        this.i++;
        const n = this.peek();
        if (n !== 0x22 && n !== 0x5c) this.fail('bad escape in string');
        out += this.s[this.i];
        this.i++;
        run = this.i;
      } else if (c === 0x22) {
        out += this.s.slice(run, this.i);
        this.i++;
        return out;
      } else if (c < 0x20 || c > 0x7e) {
        this.fail('control character in string');
      } else {
        this.i++;
      }
    }
    return this.fail('unterminated string');
  }

  token() {
    const start = this.i;
    this.i++;
    for (let c = this.peek(); isTchar(c) || c === 0x3a || c === 0x2f; c = this.peek()) this.i++;
    return new Token(this.s.slice(start, this.i));
  }

  byteSequence() {
    this.i++; // ":"
    const end = this.s.indexOf(':', this.i);
    if (end < 0) this.fail('unterminated byte sequence');
    const b64 = this.s.slice(this.i, end);
    if (!BASE64_RE.test(b64)) this.fail('invalid base64 in byte sequence');
    // Padding may be absent (RFC 8941 §4.2.7), but when present it must make
    // a whole number of quanta; a lone trailing character is never valid.
    const padded = b64.endsWith('=');
    if ((padded && b64.length % 4 !== 0) || (!padded && b64.length % 4 === 1)) {
      this.fail('invalid base64 length in byte sequence');
    }
    this.i = end + 1;
    return fromBase64(b64);
  }

  boolean() {
    this.i++; // "?"
    const c = this.peek();
    if (c === 0x31 || c === 0x30) {
      this.i++;
      return c === 0x31;
    }
    return this.fail('expected "0" or "1" after "?"');
  }
}

/**
 * Parses a List field value.
 * @param {string} input
 */
export function parseList(input) {
  const p = new Parser(input);
  return p.top(() => p.list());
}

/**
 * Parses a Dictionary field value. With `rejectDuplicates`, a key that
 * occurs twice, in the dictionary or in any parameter set, is a SyntaxError
 * rather than the RFC 8941 "last one wins".
 * @param {string} input
 * @param {{ rejectDuplicates?: boolean }} [options]
 */
export function parseDictionary(input, options = {}) {
  const p = new Parser(input);
  /** @type {OnDuplicate | undefined} */
  const onDuplicate = options.rejectDuplicates
    ? (key, at) => {
        p.i = at;
        p.fail(`duplicate key "${key}"`);
      }
    : undefined;
  return p.top(() => p.dictionary(onDuplicate));
}

/**
 * Parses an Item field value.
 * @param {string} input
 */
export function parseItem(input) {
  const p = new Parser(input);
  return p.top(() => p.item());
}

/**
 * Parses a field value of the given type ("list", "dictionary" or "item").
 * @param {string} input
 * @param {FieldType} type
 * @returns {List | Dictionary | Item}
 */
export function parse(input, type) {
  switch (type) {
    case 'list':
      return parseList(input);
    case 'dictionary':
      return parseDictionary(input);
    case 'item':
      return parseItem(input);
    default:
      throw new TypeError(`structured field: unknown type ${type}`);
  }
}

/**
 * Reports whether key is a valid key (of a dictionary or parameter).
 * @param {unknown} key
 * @returns {key is string}
 */
export function isKey(key) {
  return typeof key === 'string' && KEY_RE.test(key);
}

/** @param {unknown} key */
function serializeKey(key) {
  if (!isKey(key)) throw new TypeError(`structured field: invalid key ${JSON.stringify(key)}`);
  return key;
}

/** @param {number} x */
function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** @param {number} v */
function serializeDecimal(v) {
  if (!Number.isFinite(v)) throw new TypeError('structured field: decimal must be finite');
  const thousandths = roundHalfEven(Math.abs(v) * 1000);
  const int = Math.floor(thousandths / 1000);
  if (int > 999_999_999_999) throw new TypeError('structured field: decimal out of range');
  const frac = String(thousandths % 1000).padStart(3, '0').replace(/0+$/, '') || '0';
  return `${v < 0 && thousandths !== 0 ? '-' : ''}${int}.${frac}`;
}

/**
 * Serializes a bare item.
 * @param {unknown} v
 */
export function serializeBareItem(v) {
  switch (typeof v) {
    case 'number':
      if (!Number.isInteger(v)) return serializeDecimal(v);
      if (Math.abs(v) > MAX_INTEGER) throw new TypeError('structured field: integer out of range');
      return String(v);
    case 'string':
      if (!STRING_RE.test(v)) throw new TypeError('structured field: string has a character outside %x20-7E');
      return v.indexOf('"') < 0 && v.indexOf('\\') < 0 ? `"${v}"` : `"${v.replace(/[\\"]/g, '\\$&')}"`;
    case 'boolean':
      return v ? '?1' : '?0';
    default:
      break;
  }
  if (v instanceof Token) {
    if (!TOKEN_RE.test(v.value)) throw new TypeError(`structured field: invalid token ${JSON.stringify(v.value)}`);
    return v.value;
  }
  if (v instanceof Decimal) return serializeDecimal(v.value);
  if (v instanceof Uint8Array) return `:${base64(v)}:`;
  throw new TypeError(`structured field: cannot serialize ${Object.prototype.toString.call(v)}`);
}

/**
 * Serializes parameters (a Map, or an iterable of [key, value] pairs).
 * @param {Iterable<[string, unknown]> | undefined} params
 */
export function serializeParams(params) {
  let out = '';
  if (!params) return out;
  for (const [k, v] of params) {
    out += `;${serializeKey(k)}`;
    if (v !== true) out += `=${serializeBareItem(v)}`;
  }
  return out;
}

/**
 * Serializes an item or an inner list ({ value, params }).
 * @param {SerializableMember} member
 * @returns {string}
 */
export function serializeItem(member) {
  if (Array.isArray(member.value)) {
    return `(${member.value.map(serializeItem).join(' ')})${serializeParams(member.params)}`;
  }
  return serializeBareItem(member.value) + serializeParams(member.params);
}

/**
 * Serializes a List.
 * @param {ReadonlyArray<SerializableMember>} list
 */
export function serializeList(list) {
  return list.map(serializeItem).join(', ');
}

/**
 * Serializes a Dictionary (a Map, or an iterable of [key, member] pairs).
 * A member whose value is Boolean true is written as its bare key.
 * @param {Iterable<[string, SerializableMember]>} dict
 */
export function serializeDictionary(dict) {
  const parts = [];
  for (const [k, member] of dict) {
    const key = serializeKey(k);
    if (member.value === true) parts.push(key + serializeParams(member.params));
    else parts.push(`${key}=${serializeItem(member)}`);
  }
  return parts.join(', ');
}

/**
 * Serializes a parsed value of the given type.
 * @param {List | Dictionary | Item} value
 * @param {FieldType} type
 */
export function serialize(value, type) {
  switch (type) {
    case 'list':
      return serializeList(/** @type {List} */ (value));
    case 'dictionary':
      return serializeDictionary(/** @type {Dictionary} */ (value));
    case 'item':
      return serializeItem(/** @type {Item} */ (value));
    default:
      throw new TypeError(`structured field: unknown type ${type}`);
  }
}
