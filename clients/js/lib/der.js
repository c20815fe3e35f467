// The little DER (X.690) that key import needs: reading the algorithm of a
// PKCS#8 or SPKI key, and wrapping PKCS#1 and SEC1 keys, which Web Crypto
// does not read, into PKCS#8 and SPKI, which it does.

import { fromBase64 } from './bytes.js';

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const NULL = 0x05;
const OID = 0x06;

// Object identifiers, as the contents of their DER encoding, in hex.
export const OIDS = Object.freeze({
  rsaEncryption: '2a864886f70d010101',
  rsassaPss: '2a864886f70d01010a',
  mgf1: '2a864886f70d010108',
  sha512: '608648016503040203',
  ecPublicKey: '2a8648ce3d0201',
  prime256v1: '2a8648ce3d030107',
  secp384r1: '2b81040022',
  ed25519: '2b6570',
});

/**
 * One TLV: its tag, where it starts (at its tag), and where its contents
 * start and end in the input.
 * @typedef {{ tag: number, at: number, start: number, end: number }} TLV
 */

/**
 * Reads the TLV at offset `at`, which must end by `limit`.
 * @param {Uint8Array} der
 * @param {number} at
 * @param {number} [limit]
 * @returns {TLV}
 */
function read(der, at, limit = der.length) {
  if (at + 2 > limit) throw new TypeError('signet: truncated DER');
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) throw new TypeError('signet: unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i];
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new TypeError('signet: truncated DER');
  return { tag, at, start, end };
}

/**
 * The TLVs directly inside a constructed one.
 * @param {Uint8Array} der
 * @param {TLV} tlv
 * @returns {TLV[]}
 */
function children(der, tlv) {
  const out = [];
  for (let at = tlv.start; at < tlv.end; at = out[out.length - 1].end) out.push(read(der, at, tlv.end));
  return out;
}

/**
 * @param {Uint8Array} der
 * @param {TLV} tlv
 */
function hex(der, tlv) {
  let s = '';
  for (let i = tlv.start; i < tlv.end; i++) s += der[i].toString(16).padStart(2, '0');
  return s;
}

/**
 * The key algorithm of a PKCS#8 PrivateKeyInfo or SPKI SubjectPublicKeyInfo:
 * its OID, the OID of its parameters when they are one (an EC curve), and
 * the parameters' TLV.
 * @typedef {object} KeyInfo
 * @property {'pkcs8' | 'spki'} format
 * @property {string} oid
 * @property {string | undefined} paramOid
 * @property {TLV | undefined} params
 * @property {TLV} algorithm  the AlgorithmIdentifier
 */

/**
 * Reads the algorithm of a PKCS#8 or SPKI key.
 * @param {Uint8Array} der
 * @param {'pkcs8' | 'spki'} format
 * @returns {KeyInfo}
 */
export function keyInfo(der, format) {
  const top = read(der, 0);
  if (top.tag !== SEQUENCE || top.end !== der.length) throw new TypeError(`signet: not a ${format} key`);
  const parts = children(der, top);
  const algorithm = format === 'pkcs8' ? parts[1] : parts[0];
  if (!algorithm || algorithm.tag !== SEQUENCE) throw new TypeError(`signet: not a ${format} key`);
  const [oid, params] = children(der, algorithm);
  if (!oid || oid.tag !== OID) throw new TypeError(`signet: not a ${format} key`);
  return {
    format,
    oid: hex(der, oid),
    paramOid: params && params.tag === OID ? hex(der, params) : undefined,
    params,
    algorithm,
  };
}

/**
 * Reports whether the RSASSA-PSS parameters of a key (RFC 4055 §3.1) allow
 * rsa-pss-sha512: SHA-512, MGF1 with SHA-512, and a salt of at most 64
 * bytes. A key without parameters allows anything; parameters that leave
 * the hash out mean SHA-1.
 * @param {Uint8Array} der
 * @param {TLV | undefined} params
 */
export function pssAllowsSha512(der, params) {
  if (params === undefined || params.tag === NULL) return true;
  if (params.tag !== SEQUENCE) return false;
  let hash = false;
  let mgf = false;
  let salt = 20;
  for (const field of children(der, params)) {
    const [inner] = children(der, field);
    if (!inner) return false;
    switch (field.tag) {
      case 0xa0: {
        const [h] = children(der, inner);
        hash = h !== undefined && hex(der, h) === OIDS.sha512;
        break;
      }
      case 0xa1: {
        const [m, p] = children(der, inner);
        const [h] = p && p.tag === SEQUENCE ? children(der, p) : [];
        mgf = m !== undefined && hex(der, m) === OIDS.mgf1 && h !== undefined && hex(der, h) === OIDS.sha512;
        break;
      }
      case 0xa2:
        if (inner.tag !== INTEGER || inner.end - inner.start > 4) return false;
        salt = 0;
        for (let i = inner.start; i < inner.end; i++) salt = salt * 256 + der[i];
        break;
      default:
        break;
    }
  }
  return hash && mgf && salt <= 64;
}

/**
 * The DER of a TLV.
 * @param {number} tag
 * @param {Uint8Array[]} contents
 * @returns {Uint8Array<ArrayBuffer>}
 */
function tlv(tag, ...contents) {
  let len = 0;
  for (const c of contents) len += c.length;
  const head = len < 0x80 ? [tag, len]
    : len < 0x100 ? [tag, 0x81, len]
      : len < 0x10000 ? [tag, 0x82, len >> 8, len & 0xff]
        : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head);
  let at = head.length;
  for (const c of contents) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** @param {string} h */
const oidBytes = (h) => tlv(OID, Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16)));
const RSA_ALGORITHM = () => tlv(SEQUENCE, oidBytes(OIDS.rsaEncryption), tlv(NULL));

/**
 * Wraps a PKCS#1 RSAPrivateKey into PKCS#8.
 * @param {Uint8Array} pkcs1
 */
export function pkcs8FromPkcs1(pkcs1) {
  return tlv(SEQUENCE, tlv(INTEGER, new Uint8Array([0])), RSA_ALGORITHM(), tlv(OCTET_STRING, pkcs1));
}

/**
 * Wraps a PKCS#1 RSAPublicKey into SPKI.
 * @param {Uint8Array} pkcs1
 */
export function spkiFromPkcs1(pkcs1) {
  return tlv(SEQUENCE, RSA_ALGORITHM(), tlv(BIT_STRING, new Uint8Array([0]), pkcs1));
}

/**
 * Wraps a SEC1 ECPrivateKey into PKCS#8, taking the curve from its
 * parameters.
 * @param {Uint8Array} sec1
 */
export function pkcs8FromSec1(sec1) {
  const top = read(sec1, 0);
  if (top.tag !== SEQUENCE || top.end !== sec1.length) throw new TypeError('signet: not a SEC1 EC private key');
  const curve = children(sec1, top).find((c) => c.tag === 0xa0);
  const [oid] = curve ? children(sec1, curve) : [];
  if (!oid || oid.tag !== OID) throw new TypeError('signet: a SEC1 EC private key must name its curve');
  const algorithm = tlv(SEQUENCE, oidBytes(OIDS.ecPublicKey), sec1.subarray(oid.at, oid.end));
  return tlv(SEQUENCE, tlv(INTEGER, new Uint8Array([0])), algorithm, tlv(OCTET_STRING, sec1));
}

/**
 * Replaces the AlgorithmIdentifier of a PKCS#8 or SPKI RSA key with plain
 * rsaEncryption, which Web Crypto reads for every RSA algorithm (an
 * RSASSA-PSS one it does not read everywhere).
 * @param {Uint8Array} der
 * @param {KeyInfo} info
 */
export function asRsaEncryption(der, info) {
  const top = read(der, 0);
  const before = der.subarray(top.start, info.algorithm.at);
  const after = der.subarray(info.algorithm.end, top.end);
  return tlv(SEQUENCE, before, RSA_ALGORITHM(), after);
}

/**
 * Decodes PEM text: its label and DER bytes. Headers (Proc-Type, …) mean an
 * encrypted key, which is refused.
 * @param {string} text
 * @returns {{ label: string, der: Uint8Array<ArrayBuffer> }}
 */
export function decodePem(text) {
  const m = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END \1-----\s*$/.exec(text.trim() + '\n');
  if (!m) throw new TypeError('signet: malformed PEM');
  if (m[2].includes(':')) throw new TypeError('signet: encrypted PEM keys are not supported');
  const body = m[2].replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new TypeError('signet: malformed PEM');
  return { label: m[1], der: fromBase64(body) };
}
