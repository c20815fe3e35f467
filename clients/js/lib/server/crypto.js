// node:crypto where it is faster than Web Crypto on a server's hot path:
// signature verification (through the native provider of ../../node-native.js,
// which the server entry point installs, but called synchronously here, so
// that a verdict costs no promise) and Content-Digest checking.

import { createHash, timingSafeEqual } from 'node:crypto';
import { nodeCrypto } from '../../node-native.js';
import { expectedDigests } from '../digest.js';
import { refuse, Reason } from '../errors.js';
import { verifyingKeyOf } from '../keys.js';

/**
 * Reports whether signature is key's signature of data: synchronously
 * through node:crypto where it covers the algorithm and key, else through
 * the Key.
 * @param {import('../keys.js').Key} key
 * @param {Uint8Array} data
 * @param {Uint8Array} signature
 * @returns {boolean | Promise<boolean>}
 */
export function verifySignature(key, data, signature) {
  const ck = verifyingKeyOf(key);
  if (ck !== undefined && nodeCrypto.algorithms.has(key.alg)) {
    const ok = nodeCrypto.verify(key.alg, ck, data, signature);
    if (ok !== undefined) return ok;
  }
  return key.verify(data, signature);
}

/** @type {Record<string, string>} */
const NODE_HASHES = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

/**
 * Checks content against a Content-Digest field value, as
 * checkContentDigest of the core does: every member of a known algorithm
 * must match, and there must be one. Throws a SignatureError
 * (digest-mismatch) otherwise.
 * @param {string} value
 * @param {Uint8Array | null} content
 */
export function checkContentDigest(value, content) {
  for (const [alg, want] of expectedDigests(value)) {
    const got = createHash(NODE_HASHES[alg]).update(content || new Uint8Array(0)).digest();
    // Digests are not secrets; the comparison is constant-time all the same.
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      throw refuse(Reason.DigestMismatch, `${alg} digest of the content does not match Content-Digest`);
    }
  }
}
