// The Content-Digest field of RFC 9530.

import { createHash, timingSafeEqual } from 'node:crypto';
import * as sf from './sf.js';
import { refuse, Reason } from './errors.js';
import { bodyBytesSync, eachChunk, isBlob, isStream } from './message.js';

// Only the active algorithms of the RFC 9530 registry; the deprecated ones
// (md5, sha, unixsum, unixcksum, adler, crc32c) are ignored like unknown ones.
/** @type {Record<string, string>} */
const HASHES = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

/** @typedef {'sha-256' | 'sha-512'} DigestAlgorithm */

/** The Content-Digest algorithms this package computes and checks. */
export const DIGEST_ALGORITHMS = Object.freeze(Object.keys(HASHES));

/** @param {string} alg */
function hashName(alg) {
  const h = HASHES[alg];
  if (!h) throw new TypeError(`signet: unsupported digest algorithm ${JSON.stringify(alg)} (use sha-256 or sha-512)`);
  return h;
}

/**
 * @param {string} alg
 * @param {Buffer} digest
 */
function field(alg, digest) {
  return `${alg}=:${digest.toString('base64')}:`;
}

/**
 * The Content-Digest field value of bytes already in memory.
 * @param {Uint8Array|null} bytes
 * @param {string} [alg]
 */
export function contentDigestOf(bytes, alg = 'sha-256') {
  const h = createHash(hashName(alg));
  if (bytes) h.update(bytes);
  return field(alg, h.digest());
}

/**
 * Computes a Content-Digest field value, e.g. `sha-256=:…:`. Streams
 * (ReadableStream, Node streams, async iterables) are hashed chunk by chunk
 * and are consumed; null or undefined is empty content.
 * @param {import('./message.js').BodyInput | undefined} body
 * @param {DigestAlgorithm} [alg]  "sha-256" (default) or "sha-512"
 * @returns {Promise<string>}
 */
export async function contentDigest(body, alg = 'sha-256') {
  const h = createHash(hashName(alg));
  const bytes = bodyBytesSync(body);
  if (bytes !== undefined) {
    if (bytes) h.update(bytes);
  } else if (isStream(body)) {
    await eachChunk(body, (chunk) => h.update(chunk));
  } else if (isBlob(body)) {
    h.update(new Uint8Array(await body.arrayBuffer()));
  } else {
    throw new TypeError('signet: unsupported body type; use a string, bytes, Blob or stream');
  }
  return field(alg, h.digest());
}

/**
 * Parses a Content-Digest field value into the digests of the algorithms
 * this package knows, ignoring the others.
 * @param {string} value
 * @returns {Map<string, Uint8Array>}
 */
export function parseContentDigest(value) {
  const dict = sf.parseDictionary(value);
  const out = new Map();
  for (const [alg, member] of dict) {
    if (!HASHES[alg]) continue;
    if (!(member.value instanceof Uint8Array)) throw new SyntaxError(`Content-Digest member ${alg} is not a Byte Sequence`);
    out.set(alg, member.value);
  }
  return out;
}

/** @param {string} value */
function expectedDigests(value) {
  let digests;
  try {
    digests = parseContentDigest(value);
  } catch (err) {
    throw refuse(Reason.DigestMismatch, `malformed Content-Digest: ${err.message}`);
  }
  if (digests.size === 0) throw refuse(Reason.DigestMismatch, 'Content-Digest has no supported algorithm (sha-256, sha-512)');
  return digests;
}

/**
 * @param {Map<string, Uint8Array>} digests
 * @param {Map<string, import('node:crypto').Hash>} hashes
 */
function compare(digests, hashes) {
  for (const [alg, want] of digests) {
    const got = /** @type {import('node:crypto').Hash} */ (hashes.get(alg)).digest();
    if (want.length !== got.length || !timingSafeEqual(got, want)) {
      throw refuse(Reason.DigestMismatch, `${alg} digest of the content does not match Content-Digest`);
    }
  }
}

/**
 * Checks a received Content-Digest field value against content in memory:
 * every member with a known algorithm must match, and there must be at
 * least one. Throws a SignatureError with reason digest-mismatch otherwise.
 * @param {string} value
 * @param {Uint8Array|null} bytes
 */
export function checkContentDigest(value, bytes) {
  const digests = expectedDigests(value);
  /** @type {Map<string, import('node:crypto').Hash>} */
  const hashes = new Map();
  for (const alg of digests.keys()) hashes.set(alg, createHash(HASHES[alg]).update(bytes || new Uint8Array(0)));
  compare(digests, hashes);
}

/**
 * Like checkContentDigest, for a body of any accepted kind; streams are
 * hashed chunk by chunk (and consumed).
 * @param {string} value
 * @param {import('./message.js').BodyInput | undefined} body
 * @returns {Promise<void>}
 */
export async function verifyContentDigest(value, body) {
  const digests = expectedDigests(value);
  /** @type {Map<string, import('node:crypto').Hash>} */
  const hashes = new Map();
  for (const alg of digests.keys()) hashes.set(alg, createHash(HASHES[alg]));
  /** @param {Uint8Array} chunk */
  const update = (chunk) => {
    for (const h of hashes.values()) h.update(chunk);
  };
  const bytes = bodyBytesSync(body);
  if (bytes !== undefined) {
    if (bytes) update(bytes);
  } else if (isStream(body)) {
    await eachChunk(body, update);
  } else if (isBlob(body)) {
    update(new Uint8Array(await body.arrayBuffer()));
  } else {
    throw new TypeError('signet: unsupported body type; use a string, bytes, Blob or stream');
  }
  compare(digests, hashes);
}
