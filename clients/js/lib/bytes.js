// Bytes without Buffer: UTF-8 and Latin-1 conversions, base64, and a
// constant-time comparison, over Uint8Array and the encoders every runtime
// has.

const utf8Encoder = new TextEncoder();
const ASCII = /^[\x00-\x7f]*$/;

/**
 * The UTF-8 bytes of s.
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function utf8(s) {
  return utf8Encoder.encode(s);
}

/**
 * The bytes of a byte string: one character per octet, as HTTP field values
 * are held by fetch and node:http. Throws a TypeError for a character above
 * U+00FF.
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function latin1(s) {
  // ASCII, as signature bases almost always are, is the same in UTF-8, which
  // the runtime's encoder does at native speed.
  if (ASCII.test(s)) return utf8Encoder.encode(s);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new TypeError('signet: a character above U+00FF cannot be a byte');
    out[i] = c;
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * @param {Uint8Array} bytes
 * @param {string} alphabet
 * @param {boolean} pad
 */
function encode(bytes, alphabet, pad) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? '==' : '');
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '');
  }
  return out;
}

/**
 * Base64 with padding (RFC 4648 §4).
 * @param {Uint8Array} bytes
 */
export function base64(bytes) {
  return encode(bytes, B64, true);
}

/**
 * Base64url without padding (RFC 4648 §5).
 * @param {Uint8Array} bytes
 */
export function base64url(bytes) {
  return encode(bytes, B64URL, false);
}

const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  DECODE[B64.charCodeAt(i)] = i;
  DECODE[B64URL.charCodeAt(i)] = i;
}

/**
 * Decodes base64 or base64url, with or without padding. Throws a TypeError
 * for any other character, misplaced padding, or a length no encoder makes.
 * Bits left over in the last character are ignored, as RFC 8941 allows.
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function fromBase64(s) {
  let end = s.length;
  if (end % 4 === 0 && s.endsWith('==')) end -= 2;
  else if (end % 4 === 0 && s.endsWith('=')) end -= 1;
  if (end % 4 === 1) throw new TypeError('signet: invalid base64 length');
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let bits = 0;
  let n = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? DECODE[c] : -1;
    if (v < 0) throw new TypeError('signet: invalid base64');
    bits = (bits << 6) | v;
    n += 6;
    if (n >= 8) {
      n -= 8;
      out[o++] = (bits >> n) & 0xff;
    }
  }
  return out;
}

/**
 * Reports whether a and b hold the same bytes, in time that depends only on
 * their lengths.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * The bytes of the chunks, one after the other.
 * @param {Uint8Array[]} chunks
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function concat(chunks) {
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
