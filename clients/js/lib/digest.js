// The Content-Digest field of RFC 9530, on Web Crypto.

import * as sf from './sf.js';
import { base64, concat, equalBytes } from './bytes.js';
import { refuse, Reason } from './errors.js';
import { readBody } from './message.js';
import { digest as hashBytes } from './native.js';

// Only the active algorithms of the RFC 9530 registry; the deprecated ones
// (md5, sha, unixsum, unixcksum, adler, crc32c) are ignored like unknown ones.
/** @type {Record<string, string>} */
const HASHES = { 'sha-256': 'SHA-256', 'sha-512': 'SHA-512' };

/** @typedef {'sha-256' | 'sha-512'} DigestAlgorithm */

/** The Content-Digest algorithms this package computes and checks. */
export const DIGEST_ALGORITHMS = Object.freeze(Object.keys(HASHES));

/** @param {string} alg */
function hashName(alg) {
  const h = Object.prototype.hasOwnProperty.call(HASHES, alg) ? HASHES[alg] : undefined;
  if (!h) throw new TypeError(`signet: unsupported digest algorithm ${JSON.stringify(alg)} (use sha-256 or sha-512)`);
  return h;
}

/**
 * @param {string} hash  the Web Crypto name
 * @param {Uint8Array | null} bytes
 */
async function digest(hash, bytes) {
  return hashBytes(/** @type {'SHA-256' | 'SHA-512'} */ (hash), bytes || new Uint8Array(0));
}

/**
 * The Content-Digest field value of bytes already in memory.
 * @param {Uint8Array | null} bytes
 * @param {string} [alg]
 * @returns {Promise<string>}
 */
export async function contentDigestOf(bytes, alg = 'sha-256') {
  return `${alg}=:${base64(await digest(hashName(alg), bytes))}:`;
}

/**
 * Computes a Content-Digest field value, e.g. `sha-256=:…:`. A stream
 * (ReadableStream, Node stream, async iterable) is read to its end, into
 * memory, since Web Crypto hashes only whole messages; null or undefined is
 * empty content.
 * @param {import('./message.js').BodyInput | undefined} body
 * @param {DigestAlgorithm} [alg]  "sha-256" (default) or "sha-512"
 * @returns {Promise<string>}
 */
export async function contentDigest(body, alg = 'sha-256') {
  hashName(alg); // before the stream is read
  return contentDigestOf(await readBody(body), alg);
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
    if (!Object.prototype.hasOwnProperty.call(HASHES, alg)) continue;
    if (!(member.value instanceof Uint8Array)) throw new SyntaxError(`Content-Digest member ${alg} is not a Byte Sequence`);
    out.set(alg, member.value);
  }
  return out;
}

/**
 * The digests a Content-Digest field value holds for the algorithms this
 * package knows; a SignatureError (digest-mismatch) when it is malformed
 * or holds none.
 * @param {string} value
 * @returns {Map<string, Uint8Array>}
 */
export function expectedDigests(value) {
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
 * Checks a received Content-Digest field value against content in memory:
 * every member with a known algorithm must match, and there must be at
 * least one. Rejects with a SignatureError with reason digest-mismatch
 * otherwise.
 * @param {string} value
 * @param {Uint8Array | null} bytes
 * @returns {Promise<void>}
 */
export async function checkContentDigest(value, bytes) {
  return compare(expectedDigests(value), bytes);
}

/**
 * @param {Map<string, Uint8Array>} digests
 * @param {Uint8Array | null} bytes
 */
async function compare(digests, bytes) {
  for (const [alg, want] of digests) {
    // Digests are not secrets; the comparison is constant-time all the same.
    if (!equalBytes(await digest(HASHES[alg], bytes), want)) {
      throw refuse(Reason.DigestMismatch, `${alg} digest of the content does not match Content-Digest`);
    }
  }
}

/**
 * Like checkContentDigest, for a body of any accepted kind; a stream is
 * read to its end first.
 * @param {string} value
 * @param {import('./message.js').BodyInput | undefined} body
 * @returns {Promise<void>}
 */
export async function verifyContentDigest(value, body) {
  const digests = expectedDigests(value); // before the stream is read
  return compare(digests, await readBody(body));
}

/**
 * An incremental hash, as node:crypto's createHash gives: the portable
 * core has none (Web Crypto hashes whole messages only).
 * @typedef {{ update(chunk: Uint8Array): unknown, digest(): Uint8Array }} IncrementalHash
 * @typedef {(alg: DigestAlgorithm) => IncrementalHash} HashFactory
 */

/** The most content a checker without an incremental hash holds. */
export const DEFAULT_MAX_HELD_BYTES = 32 << 20;

/**
 * Checks content against a Content-Digest field value as it streams by:
 * update with each chunk, then check at the end. With createHash (the
 * node entry point passes node:crypto's) nothing is held; without, the
 * content is held, at most maxHeld bytes, and hashed at the end.
 * @param {string} value
 * @param {{ createHash?: HashFactory, maxHeld?: number }} [options]
 * @returns {{ update(chunk: Uint8Array): void, check(): Promise<void> }}
 */
export function contentChecker(value, options = {}) {
  const digests = expectedDigests(value);
  const { createHash } = options;
  if (createHash) {
    const hashes = [...digests].map(([alg, want]) => ({ alg, want, h: createHash(/** @type {DigestAlgorithm} */ (alg)) }));
    return {
      update(chunk) {
        for (const { h } of hashes) h.update(chunk);
      },
      async check() {
        for (const { alg, want, h } of hashes) {
          if (!equalBytes(new Uint8Array(h.digest()), want)) {
            throw refuse(Reason.DigestMismatch, `${alg} digest of the content does not match Content-Digest`);
          }
        }
      },
    };
  }
  const maxHeld = options.maxHeld === undefined ? DEFAULT_MAX_HELD_BYTES : options.maxHeld;
  /** @type {Uint8Array[]} */
  const chunks = [];
  let size = 0;
  return {
    update(chunk) {
      size += chunk.length;
      if (size > maxHeld) {
        throw new RangeError(`signet: the content is over the ${maxHeld} bytes this runtime holds to check its digest (Web Crypto hashes whole messages; @signet/client/node hashes as it streams)`);
      }
      chunks.push(chunk.slice());
    },
    async check() {
      return compare(digests, concat(chunks));
    },
  };
}
