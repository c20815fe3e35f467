// node:crypto as the core's native provider (lib/native.js): on Node.js it
// signs, verifies and hashes synchronously, from the same Web Crypto keys
// the core holds (KeyObject.from takes non-extractable CryptoKeys too),
// several times faster per call than Web Crypto's promise-per-call API on
// messages of a request's size. Importing this module installs it; the
// Node.js entry points do.

import { KeyObject, constants, createHash, createHmac, sign, timingSafeEqual, verify } from 'node:crypto';
import { installNative } from './lib/native.js';

/**
 * Per RFC 9421 algorithm: the node:crypto digest name (null for Ed25519,
 * which hashes internally) and the options its sign/verify take beside
 * the key.
 * @type {Record<string, { hash: string | null, options: { dsaEncoding?: 'ieee-p1363', padding?: number, saltLength?: number } }>}
 */
const SIGNATURES = {
  ed25519: { hash: null, options: {} },
  'ecdsa-p256-sha256': { hash: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  'ecdsa-p384-sha384': { hash: 'sha384', options: { dsaEncoding: 'ieee-p1363' } },
  'rsa-pss-sha512': { hash: 'sha512', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 } },
  'rsa-v1_5-sha256': { hash: 'sha256', options: { padding: constants.RSA_PKCS1_PADDING } },
};

/** The HMAC-SHA256 output size, the only size of MAC accepted. */
const MAC_SIZE = 32;

// The KeyObject of each CryptoKey, made once; null when this runtime's
// node:crypto cannot take the CryptoKey (the core then uses Web Crypto).
// Weak, so a key dropped by the application is dropped here too.
/** @type {WeakMap<CryptoKey, KeyObject | null>} */
const keyObjects = new WeakMap();

/**
 * @param {CryptoKey} key
 * @returns {KeyObject | null}
 */
function keyObject(key) {
  let ko = keyObjects.get(key);
  if (ko === undefined) {
    try {
      ko = KeyObject.from(key);
    } catch {
      ko = null;
    }
    keyObjects.set(key, ko);
  }
  return ko;
}

/**
 * A copy of bytes as a plain Uint8Array, as Web Crypto's results are (not
 * a Buffer, which may share a pool).
 * @param {Uint8Array} bytes
 * @returns {Uint8Array<ArrayBuffer>}
 */
function plain(bytes) {
  return new Uint8Array(bytes);
}

/** @type {import('./lib/native.js').NativeCrypto} */
export const nodeCrypto = Object.freeze({
  algorithms: new Set(['hmac-sha256', ...Object.keys(SIGNATURES)]),

  sign(alg, key, data) {
    const ko = keyObject(key);
    if (ko === null) return undefined;
    if (alg === 'hmac-sha256') return plain(createHmac('sha256', ko).update(data).digest());
    const s = SIGNATURES[alg];
    return plain(sign(s.hash, data, { key: ko, ...s.options }));
  },

  verify(alg, key, data, signature) {
    const ko = keyObject(key);
    if (ko === null) return undefined;
    if (alg === 'hmac-sha256') {
      if (signature.length !== MAC_SIZE) return false;
      return timingSafeEqual(createHmac('sha256', ko).update(data).digest(), signature);
    }
    const s = SIGNATURES[alg];
    try {
      return verify(s.hash, data, { key: ko, ...s.options }, signature);
    } catch {
      // A malformed signature: invalid, as Web Crypto answers.
      return false;
    }
  },

  digest(hash, data) {
    return plain(createHash(hash === 'SHA-512' ? 'sha512' : 'sha256').update(data).digest());
  },
});

installNative(nodeCrypto);
