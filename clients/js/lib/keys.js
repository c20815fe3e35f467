// Keys and the signature algorithms of RFC 9421 §3.3, on node:crypto.

import {
  KeyObject,
  constants,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  timingSafeEqual,
  verify as cryptoVerify,
} from 'node:crypto';
import { inspect } from 'node:util';

/** The algorithm names this package signs and verifies with. */
export const ALGORITHMS = Object.freeze(/** @type {const} */ ([
  'hmac-sha256',
  'ed25519',
  'ecdsa-p256-sha256',
  'ecdsa-p384-sha384',
  'rsa-pss-sha512',
  'rsa-v1_5-sha256',
]));

/** @typedef {typeof ALGORITHMS[number]} Algorithm */

/**
 * Key material: an HMAC secret as base64 text or bytes; PEM text (PKCS#8,
 * SPKI, PKCS#1, SEC1); a JWK object or JWK JSON text; a KeyObject; or a Key.
 * @typedef {string | Uint8Array | ArrayBuffer | KeyObject | JsonWebKey | Key} KeyMaterial
 */

/** @type {Record<string, { types: string[], curve?: string, hash?: string, sigLen?: number }>} */
const SPECS = {
  'hmac-sha256': { types: [] },
  ed25519: { types: ['ed25519'] },
  'ecdsa-p256-sha256': { types: ['ec'], curve: 'prime256v1', hash: 'sha256', sigLen: 64 },
  'ecdsa-p384-sha384': { types: ['ec'], curve: 'secp384r1', hash: 'sha384', sigLen: 96 },
  'rsa-pss-sha512': { types: ['rsa', 'rsa-pss'], hash: 'sha512' },
  'rsa-v1_5-sha256': { types: ['rsa'], hash: 'sha256' },
};

/** @param {string} text */
function decodeSecret(text) {
  const s = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) {
    throw new TypeError('signet: an HMAC secret given as text must be base64');
  }
  const bytes = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes.length === 0) throw new TypeError('signet: empty HMAC secret');
  return bytes;
}

// JOSE names (RFC 7518, RFC 8037) and RFC 9421 names a JWK "alg" may hold.
/** @type {Record<string, Algorithm>} */
const JWK_ALGS = {
  HS256: 'hmac-sha256',
  EdDSA: 'ed25519',
  Ed25519: 'ed25519',
  ES256: 'ecdsa-p256-sha256',
  ES384: 'ecdsa-p384-sha384',
  PS512: 'rsa-pss-sha512',
  RS256: 'rsa-v1_5-sha256',
};

/**
 * @param {any} jwk
 * @returns {Algorithm | undefined}
 */
function jwkAlgorithm(jwk) {
  if (jwk.alg === undefined) return undefined;
  const alg = Object.prototype.hasOwnProperty.call(JWK_ALGS, jwk.alg) ? JWK_ALGS[jwk.alg] : jwk.alg;
  if (!SPECS[alg]) throw new TypeError(`signet: JWK alg ${JSON.stringify(jwk.alg)} is not supported`);
  return /** @type {Algorithm} */ (alg);
}

/** @param {any} jwk */
function fromJwk(jwk) {
  if (jwk.kty === 'oct') {
    if (typeof jwk.k !== 'string') throw new TypeError('signet: JWK of kty "oct" needs "k"');
    return createSecretKey(Buffer.from(jwk.k, 'base64url'));
  }
  return jwk.d !== undefined
    ? createPrivateKey({ key: jwk, format: 'jwk' })
    : createPublicKey({ key: jwk, format: 'jwk' });
}

/**
 * Returns the KeyObject of the material and the algorithm the material
 * itself names (a JWK "alg"), if any.
 * @param {unknown} material
 * @returns {{ ko: KeyObject, named?: Algorithm }}
 */
function toKeyObject(material) {
  if (material instanceof KeyObject) return { ko: material };
  if (typeof material === 'string') {
    const s = material.trim();
    if (s.startsWith('-----BEGIN')) {
      return { ko: /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(s) ? createPrivateKey(s) : createPublicKey(s) };
    }
    if (s.startsWith('{')) return toKeyObject(JSON.parse(s));
    return { ko: createSecretKey(decodeSecret(s)) };
  }
  if (material instanceof Uint8Array) {
    if (material.length === 0) throw new TypeError('signet: empty HMAC secret');
    return { ko: createSecretKey(Buffer.from(material)) };
  }
  if (material instanceof ArrayBuffer) return toKeyObject(new Uint8Array(material));
  if (material && typeof material === 'object' && typeof (/** @type {any} */ (material)).kty === 'string') {
    return { ko: fromJwk(material), named: jwkAlgorithm(material) };
  }
  throw new TypeError('signet: a key must be PEM or JWK text, a JWK object, a KeyObject, base64 text or bytes');
}

/**
 * @param {KeyObject} ko
 * @returns {Algorithm}
 */
function inferAlgorithm(ko) {
  if (ko.type === 'secret') return 'hmac-sha256';
  const type = ko.asymmetricKeyType;
  if (type === 'ed25519') return 'ed25519';
  if (type === 'rsa-pss') return 'rsa-pss-sha512';
  if (type === 'ec') {
    const curve = ko.asymmetricKeyDetails && ko.asymmetricKeyDetails.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256-sha256';
    if (curve === 'secp384r1') return 'ecdsa-p384-sha384';
  }
  throw new TypeError(`signet: cannot tell the algorithm of a ${type} key; pass alg`);
}

/**
 * @param {string} alg
 * @param {KeyObject} ko
 */
function checkCompatible(alg, ko) {
  const spec = SPECS[alg];
  if (!spec) throw new TypeError(`signet: unsupported algorithm ${JSON.stringify(alg)}`);
  if (alg === 'hmac-sha256') {
    if (ko.type !== 'secret') throw new TypeError('signet: hmac-sha256 needs a secret key');
    return;
  }
  if (ko.type === 'secret' || !spec.types.includes(ko.asymmetricKeyType || '')) {
    throw new TypeError(`signet: a ${ko.asymmetricKeyType || ko.type} key cannot be used with ${alg}`);
  }
  const details = ko.asymmetricKeyDetails || {};
  if (spec.curve && details.namedCurve !== spec.curve) {
    throw new TypeError(`signet: ${alg} needs a key on curve ${spec.curve}, not ${details.namedCurve}`);
  }
  if (ko.asymmetricKeyType === 'rsa-pss') {
    // An RSASSA-PSS key may restrict its own parameters.
    if ((details.hashAlgorithm && details.hashAlgorithm !== 'sha512') ||
        (details.mgf1HashAlgorithm && details.mgf1HashAlgorithm !== 'sha512') ||
        (details.saltLength !== undefined && details.saltLength > 64)) {
      throw new TypeError('signet: this RSASSA-PSS key is restricted to parameters other than rsa-pss-sha512');
    }
  }
}

/**
 * A key bound to one algorithm. Create one with importKey. Safe to share:
 * signing and verifying keep no state between calls.
 */
export class Key {
  #ko;
  /** @type {KeyObject | undefined} */
  #verifyKo;

  /**
   * Use importKey.
   * @param {Algorithm} alg
   * @param {KeyObject} ko
   */
  constructor(alg, ko) {
    if (!(ko instanceof KeyObject)) throw new TypeError('signet: use importKey to make a Key');
    checkCompatible(alg, ko);
    this.#ko = ko;
    /** The algorithm the key is bound to. */
    this.alg = alg;
    /** @type {'secret'|'private'|'public'} */
    this.type = ko.type;
    Object.freeze(this);
  }

  /** Reports whether the key can sign (a secret or a private key). */
  get canSign() {
    return this.type !== 'public';
  }

  /**
   * Signs data (the signature base bytes).
   * @param {Uint8Array} data
   * @returns {Buffer}
   */
  sign(data) {
    const ko = this.#ko;
    switch (this.alg) {
      case 'hmac-sha256':
        return createHmac('sha256', ko).update(data).digest();
      case 'ed25519':
        if (ko.type !== 'private') break;
        return cryptoSign(null, data, ko);
      case 'ecdsa-p256-sha256':
      case 'ecdsa-p384-sha384':
        if (ko.type !== 'private') break;
        return cryptoSign(SPECS[this.alg].hash, data, { key: ko, dsaEncoding: 'ieee-p1363' });
      case 'rsa-pss-sha512':
        if (ko.type !== 'private') break;
        return cryptoSign('sha512', data, { key: ko, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 });
      case 'rsa-v1_5-sha256':
        if (ko.type !== 'private') break;
        return cryptoSign('sha256', data, { key: ko, padding: constants.RSA_PKCS1_PADDING });
      default:
        break;
    }
    throw new TypeError(`signet: a ${this.type} key cannot sign`);
  }

  /**
   * Reports whether signature is a valid signature of data. MACs are
   * compared in constant time; a signature of the wrong size is invalid.
   * @param {Uint8Array} data
   * @param {Uint8Array} signature
   * @returns {boolean}
   */
  verify(data, signature) {
    if (this.alg === 'hmac-sha256') {
      const expected = createHmac('sha256', this.#ko).update(data).digest();
      return signature.length === expected.length && timingSafeEqual(expected, signature);
    }
    if (!this.#verifyKo) this.#verifyKo = this.#ko.type === 'private' ? createPublicKey(this.#ko) : this.#ko;
    const key = this.#verifyKo;
    try {
      switch (this.alg) {
        case 'ed25519':
          return signature.length === 64 && cryptoVerify(null, data, key, signature);
        case 'ecdsa-p256-sha256':
        case 'ecdsa-p384-sha384': {
          const spec = SPECS[this.alg];
          return signature.length === spec.sigLen &&
            cryptoVerify(spec.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
        }
        case 'rsa-pss-sha512':
          return cryptoVerify('sha512', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, signature);
        case 'rsa-v1_5-sha256':
          return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
        default:
          return false;
      }
    } catch {
      return false;
    }
  }

  [inspect.custom]() {
    return `Key { alg: '${this.alg}', type: '${this.type}' }`;
  }

  toJSON() {
    return { alg: this.alg, type: this.type };
  }
}

/**
 * Imports a key and binds it to one algorithm.
 *
 * Accepted material: an HMAC secret as base64 text or bytes; PEM text
 * (PKCS#8, SPKI, PKCS#1, SEC1); JWK (object or JSON text); a KeyObject; or
 * a Key (returned as is when its algorithm agrees). A JWK "alg" (JOSE
 * name such as "EdDSA" or "PS512", or an RFC 9421 name) binds the key too.
 * Without alg the algorithm is inferred where the key type leaves no
 * choice (RSA keys other than RSASSA-PSS need alg).
 * @param {KeyMaterial} material
 * @param {Algorithm} [alg]
 * @returns {Key}
 */
export function importKey(material, alg) {
  if (material instanceof Key) {
    if (alg !== undefined && alg !== material.alg) {
      throw new TypeError(`signet: key is bound to ${material.alg}, not ${alg}`);
    }
    return material;
  }
  const { ko, named } = toKeyObject(material);
  if (alg !== undefined && named !== undefined && alg !== named) {
    throw new TypeError(`signet: the JWK names ${named}, not ${alg}`);
  }
  const chosen = alg !== undefined ? alg : named !== undefined ? named : inferAlgorithm(ko);
  return new Key(chosen, ko);
}

/**
 * Generates a key pair for an asymmetric algorithm, as PEM text
 * (PKCS#8 private, SPKI public).
 * @param {Exclude<Algorithm, 'hmac-sha256'>} alg
 * @returns {{ privateKey: string, publicKey: string }}
 */
export function generateKeyPair(alg) {
  /** @type {{ type: 'spki', format: 'pem' }} */
  const publicKeyEncoding = { type: 'spki', format: 'pem' };
  /** @type {{ type: 'pkcs8', format: 'pem' }} */
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' };
  switch (alg) {
    case 'ed25519':
      return generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
    case 'ecdsa-p256-sha256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1', publicKeyEncoding, privateKeyEncoding });
    case 'ecdsa-p384-sha384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1', publicKeyEncoding, privateKeyEncoding });
    case 'rsa-pss-sha512':
    case 'rsa-v1_5-sha256':
      return generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding });
    default:
      throw new TypeError(`signet: cannot generate a key pair for ${JSON.stringify(alg)}`);
  }
}

/**
 * Generates a 256-bit HMAC secret, as base64 text.
 * @returns {string}
 */
export function generateSecret() {
  return randomBytes(32).toString('base64');
}
