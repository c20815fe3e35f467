// The one place where a runtime with a faster, synchronous crypto library
// than Web Crypto plugs it in. The core itself never has one: it signs,
// verifies and hashes through globalThis.crypto.subtle. Node.js entry
// points (@signet/client on Node through the "node" export condition,
// @signet/client/node, @signet/client/server) install node:crypto here,
// since a Web Crypto call costs a promise and a thread-pool hop that are
// worth several times the work itself on small messages. The API stays
// asynchronous either way; only the work inside gets cheaper.
//
// Not exported by the package.

/**
 * A synchronous crypto provider working from the Web Crypto keys the core
 * holds. sign and verify return undefined where they cannot use a key (the
 * core then falls back to Web Crypto); their results must be those of Web
 * Crypto byte for byte (deterministic algorithms) or verdict for verdict,
 * and MACs must be compared in constant time.
 * @typedef {object} NativeCrypto
 * @property {ReadonlySet<string>} algorithms  the RFC 9421 algorithm names sign and verify cover
 * @property {(alg: string, key: CryptoKey, data: Uint8Array) => Uint8Array | undefined} sign
 * @property {(alg: string, key: CryptoKey, data: Uint8Array, signature: Uint8Array) => boolean | undefined} verify
 * @property {(hash: 'SHA-256' | 'SHA-512', data: Uint8Array) => Uint8Array} digest
 */

/** @type {NativeCrypto | undefined} */
let provider;

/**
 * Installs provider (or, with undefined, removes the one installed).
 * @param {NativeCrypto | undefined} p
 */
export function installNative(p) {
  provider = p;
}

/**
 * The provider installed, if any.
 * @returns {NativeCrypto | undefined}
 */
export function native() {
  return provider;
}

/**
 * The SHA-256 or SHA-512 digest of data: through the native provider when
 * one is installed, else through Web Crypto.
 * @param {'SHA-256' | 'SHA-512'} hash
 * @param {Uint8Array} data
 * @returns {Promise<Uint8Array>}
 */
export async function digest(hash, data) {
  if (provider) return provider.digest(hash, data);
  return new Uint8Array(await globalThis.crypto.subtle.digest(hash, /** @type {Uint8Array<ArrayBuffer>} */ (data)));
}
