// Keys and the signature algorithms of RFC 9421 §3.3, on Web Crypto
// (globalThis.crypto.subtle), so that they work in every runtime that has
// it: Node.js 20+, browsers, Deno, Bun, Workers.

import { base64, fromBase64 } from './bytes.js';
import { OIDS, asRsaEncryption, decodePem, keyInfo, pkcs8FromPkcs1, pkcs8FromSec1, pssAllowsSha512, spkiFromPkcs1 } from './der.js';
import { native } from './native.js';

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
 * SPKI, PKCS#1, SEC1); a JWK object or JWK JSON text; a Web Crypto
 * CryptoKey or CryptoKeyPair; or a Key.
 * @typedef {string | Uint8Array | ArrayBuffer | JsonWebKey | CryptoKey | CryptoKeyPair | Key} KeyMaterial
 */

/**
 * What a key is, whatever its encoding: a secret, or an asymmetric key of
 * one type (and curve).
 * @typedef {'secret' | 'ed25519' | 'ec-p256' | 'ec-p384' | 'rsa' | 'rsa-pss'} KeyKind
 */

/**
 * Per algorithm: the key kinds it takes, the Web Crypto parameters to
 * import keys with and to sign with, and the size of its signatures when
 * fixed.
 * @type {Record<Algorithm, { kinds: KeyKind[], importParams: AlgorithmIdentifier | RsaHashedImportParams | EcKeyImportParams | HmacImportParams, signParams: AlgorithmIdentifier | EcdsaParams | RsaPssParams, sigLen?: number }>}
 */
const SPECS = {
  'hmac-sha256': { kinds: ['secret'], importParams: { name: 'HMAC', hash: 'SHA-256' }, signParams: 'HMAC' },
  ed25519: { kinds: ['ed25519'], importParams: 'Ed25519', signParams: 'Ed25519', sigLen: 64 },
  'ecdsa-p256-sha256': {
    kinds: ['ec-p256'], importParams: { name: 'ECDSA', namedCurve: 'P-256' }, signParams: { name: 'ECDSA', hash: 'SHA-256' }, sigLen: 64,
  },
  'ecdsa-p384-sha384': {
    kinds: ['ec-p384'], importParams: { name: 'ECDSA', namedCurve: 'P-384' }, signParams: { name: 'ECDSA', hash: 'SHA-384' }, sigLen: 96,
  },
  'rsa-pss-sha512': {
    kinds: ['rsa', 'rsa-pss'], importParams: { name: 'RSA-PSS', hash: 'SHA-512' }, signParams: { name: 'RSA-PSS', saltLength: 64 },
  },
  'rsa-v1_5-sha256': { kinds: ['rsa'], importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signParams: 'RSASSA-PKCS1-v1_5' },
};

/** @returns {SubtleCrypto} */
function subtle() {
  const c = globalThis.crypto;
  if (!c || !c.subtle) throw new TypeError('signet: Web Crypto (globalThis.crypto.subtle) is not available; browsers offer it only in secure contexts');
  return c.subtle;
}

/** @param {string} text */
function decodeSecret(text) {
  const s = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) throw new TypeError('signet: an HMAC secret given as text must be base64');
  return nonEmptySecret(fromBase64(s));
}

/**
 * @param {Uint8Array<ArrayBuffer>} bytes
 * @returns {Uint8Array<ArrayBuffer>}
 */
function nonEmptySecret(bytes) {
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
 * @param {JsonWebKey} jwk
 * @returns {Algorithm | undefined}
 */
function jwkAlgorithm(jwk) {
  if (jwk.alg === undefined) return undefined;
  const alg = Object.prototype.hasOwnProperty.call(JWK_ALGS, jwk.alg) ? JWK_ALGS[jwk.alg] : jwk.alg;
  if (!Object.prototype.hasOwnProperty.call(SPECS, alg)) throw new TypeError(`signet: JWK alg ${JSON.stringify(jwk.alg)} is not supported`);
  return /** @type {Algorithm} */ (alg);
}

// The members of a JWK that hold key material; the others (alg, use,
// key_ops, ext, kid) are left out when importing, so that Web Crypto's own
// checks of them cannot refuse a key bound to an RFC 9421 name.
const JWK_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'k', 'd', 'p', 'q', 'dp', 'dq', 'qi'];
const JWK_PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi'];

/**
 * @param {any} jwk
 * @param {boolean} [publicOnly]
 * @returns {JsonWebKey}
 */
function cleanJwk(jwk, publicOnly = false) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const m of JWK_MEMBERS) {
    if (jwk[m] !== undefined && !(publicOnly && JWK_PRIVATE.includes(m))) out[m] = jwk[m];
  }
  return out;
}

/**
 * @param {JsonWebKey} jwk
 * @returns {KeyKind}
 */
function jwkKind(jwk) {
  switch (jwk.kty) {
    case 'oct':
      return 'secret';
    case 'OKP':
      if (jwk.crv === 'Ed25519') return 'ed25519';
      break;
    case 'EC':
      if (jwk.crv === 'P-256') return 'ec-p256';
      if (jwk.crv === 'P-384') return 'ec-p384';
      break;
    case 'RSA':
      return 'rsa';
    default:
      break;
  }
  throw new TypeError(`signet: unsupported JWK (kty ${JSON.stringify(jwk.kty)}, crv ${JSON.stringify(jwk.crv)})`);
}

/**
 * @param {import('./der.js').KeyInfo} info
 * @param {Uint8Array} der
 * @returns {KeyKind}
 */
function derKind(info, der) {
  switch (info.oid) {
    case OIDS.ed25519:
      return 'ed25519';
    case OIDS.ecPublicKey:
      if (info.paramOid === OIDS.prime256v1) return 'ec-p256';
      if (info.paramOid === OIDS.secp384r1) return 'ec-p384';
      throw new TypeError('signet: only EC keys on P-256 and P-384 are supported');
    case OIDS.rsaEncryption:
      return 'rsa';
    case OIDS.rsassaPss:
      if (!pssAllowsSha512(der, info.params)) {
        throw new TypeError('signet: this RSASSA-PSS key is restricted to parameters other than rsa-pss-sha512');
      }
      return 'rsa-pss';
    default:
      throw new TypeError('signet: unsupported key type');
  }
}

/**
 * Key material reduced to one form Web Crypto imports, before the
 * algorithm is known.
 * @typedef {object} Parsed
 * @property {KeyKind} kind
 * @property {'secret' | 'private' | 'public'} type
 * @property {Algorithm} [named]  the algorithm the material itself names (a JWK "alg")
 * @property {Uint8Array<ArrayBuffer>} [raw]  a secret
 * @property {Uint8Array<ArrayBuffer>} [der]  PKCS#8 (private) or SPKI (public)
 * @property {JsonWebKey} [jwk]
 */

/**
 * @param {Uint8Array<ArrayBuffer>} der
 * @param {'pkcs8' | 'spki'} format
 * @returns {Parsed}
 */
function fromDer(der, format) {
  const info = keyInfo(der, format);
  const kind = derKind(info, der);
  const type = format === 'pkcs8' ? 'private' : 'public';
  return { kind, type, der: kind === 'rsa-pss' ? asRsaEncryption(der, info) : der };
}

/**
 * @param {string} pem
 * @returns {Parsed}
 */
function fromPem(pem) {
  const { label, der } = decodePem(pem);
  switch (label) {
    case 'PRIVATE KEY':
      return fromDer(der, 'pkcs8');
    case 'PUBLIC KEY':
      return fromDer(der, 'spki');
    case 'RSA PRIVATE KEY':
      return fromDer(pkcs8FromPkcs1(der), 'pkcs8');
    case 'RSA PUBLIC KEY':
      return fromDer(spkiFromPkcs1(der), 'spki');
    case 'EC PRIVATE KEY':
      return fromDer(pkcs8FromSec1(der), 'pkcs8');
    default:
      throw new TypeError(`signet: unsupported PEM type ${JSON.stringify(label)}`);
  }
}

/**
 * @param {any} jwk
 * @returns {Parsed}
 */
function fromJwk(jwk) {
  const kind = jwkKind(jwk);
  const named = jwkAlgorithm(jwk);
  if (kind === 'secret') {
    if (typeof jwk.k !== 'string') throw new TypeError('signet: JWK of kty "oct" needs "k"');
    return { kind, type: 'secret', named, raw: nonEmptySecret(fromBase64(jwk.k)) };
  }
  return { kind, type: jwk.d !== undefined ? 'private' : 'public', named, jwk: cleanJwk(jwk) };
}

/**
 * @param {unknown} material
 * @returns {Parsed}
 */
function parseMaterial(material) {
  if (typeof material === 'string') {
    const s = material.trim();
    if (s.startsWith('-----BEGIN')) return fromPem(s);
    if (s.startsWith('{')) return fromJwk(JSON.parse(s));
    return { kind: 'secret', type: 'secret', raw: decodeSecret(s) };
  }
  if (material instanceof Uint8Array) return { kind: 'secret', type: 'secret', raw: nonEmptySecret(Uint8Array.from(material)) };
  if (material instanceof ArrayBuffer) return parseMaterial(new Uint8Array(material));
  if (material && typeof material === 'object' && typeof (/** @type {any} */ (material)).kty === 'string') return fromJwk(material);
  throw new TypeError('signet: a key must be PEM or JWK text, a JWK object, a CryptoKey, base64 text or bytes');
}

/**
 * @param {KeyKind} kind
 * @returns {Algorithm}
 */
function inferAlgorithm(kind) {
  switch (kind) {
    case 'secret':
      return 'hmac-sha256';
    case 'ed25519':
      return 'ed25519';
    case 'ec-p256':
      return 'ecdsa-p256-sha256';
    case 'ec-p384':
      return 'ecdsa-p384-sha384';
    case 'rsa-pss':
      return 'rsa-pss-sha512';
    default:
      throw new TypeError(`signet: cannot tell the algorithm of an ${kind.toUpperCase()} key; pass alg`);
  }
}

/**
 * @param {unknown} alg
 * @param {KeyKind} kind
 * @returns {asserts alg is Algorithm}
 */
function checkCompatible(alg, kind) {
  if (typeof alg !== 'string' || !Object.prototype.hasOwnProperty.call(SPECS, alg)) {
    throw new TypeError(`signet: unsupported algorithm ${JSON.stringify(alg)}`);
  }
  if (!SPECS[/** @type {Algorithm} */ (alg)].kinds.includes(kind)) {
    if (kind.startsWith('ec-') && alg.startsWith('ecdsa-')) {
      throw new TypeError(`signet: ${alg} needs a key on curve ${alg === 'ecdsa-p256-sha256' ? 'P-256' : 'P-384'}`);
    }
    throw new TypeError(`signet: a ${kind === 'secret' ? 'secret' : `${kind} key`} cannot be used with ${alg}`);
  }
}

/**
 * The algorithm of a CryptoKey: its Web Crypto parameters fix it.
 * @param {CryptoKey} key
 * @returns {Algorithm}
 */
function cryptoKeyAlgorithm(key) {
  const a = /** @type {any} */ (key.algorithm);
  const hash = a.hash && a.hash.name;
  switch (a.name) {
    case 'HMAC':
      if (hash === 'SHA-256') return 'hmac-sha256';
      break;
    case 'Ed25519':
      return 'ed25519';
    case 'ECDSA':
      if (a.namedCurve === 'P-256') return 'ecdsa-p256-sha256';
      if (a.namedCurve === 'P-384') return 'ecdsa-p384-sha384';
      break;
    case 'RSA-PSS':
      if (hash === 'SHA-512') return 'rsa-pss-sha512';
      break;
    case 'RSASSA-PKCS1-v1_5':
      if (hash === 'SHA-256') return 'rsa-v1_5-sha256';
      break;
    default:
      break;
  }
  throw new TypeError(`signet: a ${a.name}${hash ? ` ${hash}` : ''} CryptoKey does not fit any algorithm of this package`);
}

/** @param {unknown} x */
function isCryptoKey(x) {
  return typeof CryptoKey !== 'undefined' && x instanceof CryptoKey;
}

// Only importKey makes Keys.
const token = Symbol('signet.Key');

/**
 * The Web Crypto key a Key verifies with, for a runtime that has a faster
 * way to use it (the server entry point of Node.js). Not exported by the
 * package.
 * @type {(key: Key) => CryptoKey | undefined}
 */
export let verifyingKeyOf;

/**
 * A key bound to one algorithm. Create one with importKey. Safe to share:
 * signing and verifying keep no state between calls. Its material never
 * appears in JSON.stringify or util.inspect, and its Web Crypto keys are
 * not extractable.
 */
export class Key {
  /** @type {CryptoKey | undefined} */
  #signing;
  /** @type {CryptoKey | undefined} */
  #verifying;

  /**
   * Use importKey.
   * @param {symbol} t
   * @param {Algorithm} alg
   * @param {'secret' | 'private' | 'public'} type
   * @param {CryptoKey | undefined} signing
   * @param {CryptoKey | undefined} verifying
   */
  constructor(t, alg, type, signing, verifying) {
    if (t !== token) throw new TypeError('signet: use importKey to make a Key');
    this.#signing = signing;
    this.#verifying = verifying;
    /** The algorithm the key is bound to. */
    this.alg = alg;
    /** @type {'secret' | 'private' | 'public'} */
    this.type = type;
    Object.freeze(this);
  }

  static {
    verifyingKeyOf = (key) => key.#verifying;
  }

  /** Reports whether the key can sign (a secret or a private key). */
  get canSign() {
    return this.#signing !== undefined;
  }

  /**
   * Signs data (the signature base bytes).
   * @param {Uint8Array} data
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async sign(data) {
    if (this.#signing === undefined) throw new TypeError(`signet: a ${this.type} key cannot sign`);
    const n = native();
    if (n && n.algorithms.has(this.alg)) {
      const sig = n.sign(this.alg, this.#signing, data);
      if (sig !== undefined) return /** @type {Uint8Array<ArrayBuffer>} */ (sig);
    }
    return new Uint8Array(await subtle().sign(SPECS[this.alg].signParams, this.#signing, /** @type {BufferSource} */ (data)));
  }

  /**
   * Reports whether signature is a valid signature of data. MACs are
   * compared in constant time (by Web Crypto, or by node:crypto's
   * timingSafeEqual on Node.js); a signature of the wrong size is invalid.
   * @param {Uint8Array} data
   * @param {Uint8Array} signature
   * @returns {Promise<boolean>}
   */
  async verify(data, signature) {
    if (this.#verifying === undefined) throw new TypeError('signet: this key cannot verify (a private CryptoKey without its public key)');
    const { sigLen, signParams } = SPECS[this.alg];
    if (sigLen !== undefined && signature.length !== sigLen) return false;
    const n = native();
    if (n && n.algorithms.has(this.alg)) {
      const ok = n.verify(this.alg, this.#verifying, data, signature);
      if (ok !== undefined) return ok;
    }
    try {
      return await subtle().verify(signParams, this.#verifying, /** @type {BufferSource} */ (signature), /** @type {BufferSource} */ (data));
    } catch {
      return false;
    }
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `Key { alg: '${this.alg}', type: '${this.type}' }`;
  }

  toJSON() {
    return { alg: this.alg, type: this.type };
  }
}

/**
 * The Web Crypto keys of parsed material: one to sign with (secret or
 * private) and one to verify with (secret or public).
 * @param {Parsed} p
 * @param {Algorithm} alg
 * @returns {Promise<{ signing?: CryptoKey, verifying: CryptoKey }>}
 */
async function cryptoKeys(p, alg) {
  const s = subtle();
  const params = SPECS[alg].importParams;
  if (p.type === 'secret') {
    const k = await s.importKey('raw', /** @type {Uint8Array<ArrayBuffer>} */ (p.raw), params, false, ['sign', 'verify']);
    return { signing: k, verifying: k };
  }
  if (p.type === 'public') {
    const verifying = p.der
      ? await s.importKey('spki', p.der, params, false, ['verify'])
      : await s.importKey('jwk', /** @type {JsonWebKey} */ (p.jwk), params, false, ['verify']);
    return { verifying };
  }
  // A private key: its public half comes from its JWK form, which holds both.
  let jwk = p.jwk;
  if (!jwk) {
    const extractable = await s.importKey('pkcs8', /** @type {Uint8Array<ArrayBuffer>} */ (p.der), params, true, ['sign']);
    jwk = await s.exportKey('jwk', extractable);
  }
  const signing = await s.importKey('jwk', cleanJwk(jwk), params, false, ['sign']);
  const verifying = await s.importKey('jwk', cleanJwk(jwk, true), params, false, ['verify']);
  return { signing, verifying };
}

/**
 * Imports a key and binds it to one algorithm.
 *
 * Accepted material: an HMAC secret as base64 text or bytes; PEM text
 * (PKCS#8, SPKI, PKCS#1, SEC1); JWK (object or JSON text); a Web Crypto
 * CryptoKey (a private one signs only, unless given as a CryptoKeyPair
 * with its public key); or a Key (returned as is when its algorithm
 * agrees). A JWK "alg" (JOSE name such as "EdDSA" or "PS512", or an
 * RFC 9421 name) binds the key too. Without alg the algorithm is inferred
 * where the key type leaves no choice (RSA keys other than RSASSA-PSS need
 * alg).
 * @param {KeyMaterial} material
 * @param {Algorithm} [alg]
 * @returns {Promise<Key>}
 */
export async function importKey(material, alg) {
  return keyImporter(material, alg).load();
}

/**
 * Checks key material and its algorithm at once (throwing a TypeError),
 * and returns what importing it will give, with the import itself, which
 * Web Crypto makes asynchronous, left for later: for callers that must
 * refuse a bad key when they are set up, not on first use.
 * @param {KeyMaterial} material
 * @param {Algorithm} [alg]
 * @returns {{ alg: Algorithm, type: 'secret' | 'private' | 'public', load: () => Promise<Key> }}
 */
export function keyImporter(material, alg) {
  if (material instanceof Key) {
    if (alg !== undefined && alg !== material.alg) throw new TypeError(`signet: key is bound to ${material.alg}, not ${alg}`);
    return { alg: material.alg, type: material.type, load: async () => material };
  }
  if (isCryptoKey(material) || (material && typeof material === 'object' && isCryptoKey(/** @type {any} */ (material).privateKey))) {
    const key = fromCryptoKeys(/** @type {CryptoKey | CryptoKeyPair} */ (material), alg);
    return { alg: key.alg, type: key.type, load: async () => key };
  }
  const p = parseMaterial(material);
  if (alg !== undefined && p.named !== undefined && alg !== p.named) throw new TypeError(`signet: the JWK names ${p.named}, not ${alg}`);
  const chosen = alg !== undefined ? alg : p.named !== undefined ? p.named : inferAlgorithm(p.kind);
  checkCompatible(chosen, p.kind);
  /** @type {Promise<Key> | undefined} */
  let loading;
  const load = () => {
    loading ||= cryptoKeys(p, chosen).then(({ signing, verifying }) => new Key(token, chosen, p.type, signing, verifying));
    return loading;
  };
  return { alg: chosen, type: p.type, load };
}

/**
 * @param {CryptoKey | CryptoKeyPair} material
 * @param {Algorithm | undefined} alg
 */
function fromCryptoKeys(material, alg) {
  const pair = isCryptoKey(material) ? undefined : /** @type {CryptoKeyPair} */ (material);
  const key = pair ? pair.privateKey : /** @type {CryptoKey} */ (material);
  const chosen = cryptoKeyAlgorithm(key);
  if (alg !== undefined && alg !== chosen) throw new TypeError(`signet: this CryptoKey is for ${chosen}, not ${alg}`);
  const type = key.type;
  if (type === 'secret') return new Key(token, chosen, 'secret', key, key);
  if (type === 'public') return new Key(token, chosen, 'public', undefined, key);
  return new Key(token, chosen, 'private', key, pair ? pair.publicKey : undefined);
}

/**
 * @param {string} label
 * @param {ArrayBuffer} der
 */
function pem(label, der) {
  const b64 = base64(new Uint8Array(der)).replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Generates a key pair for an asymmetric algorithm, as PEM text (PKCS#8
 * private, SPKI public). RSA keys have 2048 bits.
 * @param {Exclude<Algorithm, 'hmac-sha256'>} alg
 * @returns {Promise<{ privateKey: string, publicKey: string }>}
 */
export async function generateKeyPair(alg) {
  /** @type {AlgorithmIdentifier | RsaHashedKeyGenParams | EcKeyGenParams} */
  let params;
  switch (alg) {
    case 'ed25519':
    case 'ecdsa-p256-sha256':
    case 'ecdsa-p384-sha384':
      params = /** @type {AlgorithmIdentifier | EcKeyGenParams} */ (SPECS[alg].importParams);
      break;
    case 'rsa-pss-sha512':
    case 'rsa-v1_5-sha256':
      params = { .../** @type {RsaHashedImportParams} */ (SPECS[alg].importParams), modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
      break;
    default:
      throw new TypeError(`signet: cannot generate a key pair for ${JSON.stringify(alg)}`);
  }
  const s = subtle();
  const pair = /** @type {CryptoKeyPair} */ (await s.generateKey(params, true, ['sign', 'verify']));
  return {
    privateKey: pem('PRIVATE KEY', await s.exportKey('pkcs8', pair.privateKey)),
    publicKey: pem('PUBLIC KEY', await s.exportKey('spki', pair.publicKey)),
  };
}

/**
 * Generates a 256-bit HMAC secret, as base64 text.
 * @returns {string}
 */
export function generateSecret() {
  return base64(globalThis.crypto.getRandomValues(new Uint8Array(32)));
}
