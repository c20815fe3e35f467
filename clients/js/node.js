// @signet/client/node: the package for Node.js. Everything of
// @signet/client, plus what only Node.js has: key files read from disk, Node
// KeyObjects accepted as keys, and Content-Digest of a stream computed as it
// flows (with node:crypto) instead of after reading it into memory. Signing,
// verifying and hashing run on node:crypto (./node-native.js).

import { KeyObject, createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { base64 } from './lib/bytes.js';
import { importKey as importPortableKey } from './lib/keys.js';
import { bodyBytesSync, eachChunk, isBlob, isStream } from './lib/message.js';
import { createSignedFetch as createPortableSignedFetch } from './lib/fetch.js';
import { verifyResponse as verifyPortableResponse } from './lib/response.js';
import './node-native.js';

export * from './index.js';

/**
 * createSignedFetch of @signet/client, whose check of signed responses
 * hashes their content with node:crypto as it streams, holding none of it.
 * @param {import('./lib/fetch.js').SignedFetchOptions} options
 * @returns {import('./lib/fetch.js').SignedFetch}
 */
export function createSignedFetch(options) {
  return createPortableSignedFetch({ createHash: nodeHash, ...options });
}

/**
 * verifyResponse of @signet/client, hashing content with node:crypto as
 * it streams, holding none of it.
 * @param {Response} response
 * @param {import('./lib/response.js').VerifyResponseOptions} options
 * @returns {Promise<Response>}
 */
export function verifyResponse(response, options) {
  return verifyPortableResponse(response, { createHash: nodeHash, ...options });
}

/** @type {import('./lib/digest.js').HashFactory} */
function nodeHash(alg) {
  return createHash(NODE_HASHES[alg]);
}

// Key files are small: an HMAC secret, a PEM or a JWK. Anything bigger is
// not a key file.
const MAX_KEY_FILE = 64 << 10;

/**
 * Imports a key as importKey of @signet/client does, and also from a Node
 * KeyObject.
 * @param {import('./lib/keys.js').KeyMaterial | KeyObject} material
 * @param {import('./lib/keys.js').Algorithm} [alg]
 * @returns {Promise<import('./lib/keys.js').Key>}
 */
export async function importKey(material, alg) {
  if (material instanceof KeyObject) {
    switch (material.type) {
      case 'secret':
        return importPortableKey(new Uint8Array(material.export()), alg);
      case 'private':
        return importPortableKey(/** @type {string} */ (material.export({ type: 'pkcs8', format: 'pem' })), alg);
      default:
        return importPortableKey(/** @type {string} */ (material.export({ type: 'spki', format: 'pem' })), alg);
    }
  }
  return importPortableKey(material, alg);
}

/**
 * Reads a key file (an HMAC secret as base64 text, PEM, or JWK JSON, as
 * `signet keygen` and `signet keys create` write them) and imports it.
 * Files over 64 KiB are refused.
 * @param {string | URL} path
 * @param {import('./lib/keys.js').Algorithm} [alg]
 * @returns {Promise<import('./lib/keys.js').Key>}
 */
export async function readKeyFile(path, alg) {
  const buf = Buffer.alloc(MAX_KEY_FILE + 1);
  let n = 0;
  const file = await open(path, 'r');
  try {
    for (let r = -1; r !== 0 && n < buf.length; n += r) ({ bytesRead: r } = await file.read(buf, n, buf.length - n, n));
  } finally {
    await file.close();
  }
  try {
    if (n > MAX_KEY_FILE) throw new TypeError(`signet: ${String(path)} is larger than a key file can be (64 KiB)`);
    return await importPortableKey(buf.toString('utf8', 0, n), alg);
  } finally {
    buf.fill(0);
  }
}

/** @type {Record<string, string>} */
const NODE_HASHES = { 'sha-256': 'sha256', 'sha-512': 'sha512' };

/**
 * Computes a Content-Digest field value like contentDigest of
 * @signet/client; a stream is hashed chunk by chunk as it is read (and
 * consumed), so its size does not matter.
 * @param {import('./lib/message.js').BodyInput | undefined} body
 * @param {import('./lib/digest.js').DigestAlgorithm} [alg]
 * @returns {Promise<string>}
 */
export async function contentDigest(body, alg = 'sha-256') {
  if (!Object.prototype.hasOwnProperty.call(NODE_HASHES, alg)) {
    throw new TypeError(`signet: unsupported digest algorithm ${JSON.stringify(alg)} (use sha-256 or sha-512)`);
  }
  const h = createHash(NODE_HASHES[alg]);
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
  return `${alg}=:${base64(h.digest())}:`;
}
