// @signet/client: HTTP Message Signatures as specified in RFC 9421, with the
// Content-Digest field of RFC 9530, for Node.js 18+.
//
// Entry points: sign, verify (with a nonce store such as MemoryNonceStore),
// createSignedFetch (which checks the gateway's signed responses when given
// its keys), presign (presigned URLs), verifyResponse; contentDigest and
// generateNonce; importKey for keys.
// Lower-level pieces: signatureBase, parseSignatures, serializeSignatures,
// parseAcceptSignature, and the RFC 8941 structured-field codec as sf. The
// TypeScript declarations are generated from the JSDoc of these files.

import { buildBase, parseComponent, serializeSignatureParams } from './lib/components.js';
import { toMessage } from './lib/message.js';
import { parseSignatureFields } from './lib/signatures.js';

export { sign, generateNonce } from './lib/sign.js';
export { verify } from './lib/verify.js';
export { MemoryNonceStore, NonceStoreFullError } from './lib/nonces.js';
export { createSignedFetch, readProblem } from './lib/fetch.js';
export { presign, PRESIGN_INPUT_PARAM, PRESIGN_SIGNATURE_PARAM, PRESIGN_TAG } from './lib/presign.js';
export {
  verifyResponse, verifiedResponse, GatewayKeys, parseJwks, jwkThumbprint, RESPONSE_TAG, GATEWAY_TAG, KEYS_PATH,
} from './lib/response.js';
export { contentDigest, verifyContentDigest, DIGEST_ALGORITHMS } from './lib/digest.js';
export { Key, importKey, generateKeyPair, generateSecret, ALGORITHMS } from './lib/keys.js';
export { SignatureError, Reason } from './lib/errors.js';
export { parseSignatures, serializeSignatures, parseAcceptSignature } from './lib/signatures.js';

/** The RFC 8941 structured-field parser and serializer. */
export * as sf from './lib/sf.js';

/**
 * @typedef {import('./lib/message.js').MessageInput} MessageInput
 * @typedef {import('./lib/message.js').PlainRequest} PlainRequest
 * @typedef {import('./lib/message.js').PlainResponse} PlainResponse
 * @typedef {import('./lib/message.js').IncomingMessageLike} IncomingMessageLike
 * @typedef {import('./lib/message.js').FieldsInput} FieldsInput
 * @typedef {import('./lib/message.js').BodyInput} BodyInput
 * @typedef {import('./lib/keys.js').Algorithm} Algorithm
 * @typedef {import('./lib/keys.js').KeyMaterial} KeyMaterial
 * @typedef {import('./lib/errors.js').ReasonCode} ReasonCode
 * @typedef {import('./lib/sign.js').SignOptions} SignOptions
 * @typedef {import('./lib/sign.js').SignResult} SignResult
 * @typedef {import('./lib/verify.js').VerifyOptions} VerifyOptions
 * @typedef {import('./lib/verify.js').VerifyResult} VerifyResult
 * @typedef {import('./lib/verify.js').VerifiedSignature} VerifiedSignature
 * @typedef {import('./lib/verify.js').KeyInput} KeyInput
 * @typedef {import('./lib/verify.js').KeyResolver} KeyResolver
 * @typedef {import('./lib/nonces.js').NonceStore} NonceStore
 * @typedef {import('./lib/nonces.js').MemoryNonceStoreOptions} MemoryNonceStoreOptions
 * @typedef {import('./lib/digest.js').DigestAlgorithm} DigestAlgorithm
 * @typedef {import('./lib/signatures.js').ParsedSignature} ParsedSignature
 * @typedef {import('./lib/signatures.js').SignatureParams} SignatureParams
 * @typedef {import('./lib/signatures.js').AcceptSignature} AcceptSignature
 * @typedef {import('./lib/fetch.js').SignedFetchOptions} SignedFetchOptions
 * @typedef {import('./lib/fetch.js').SignedFetch} SignedFetch
 * @typedef {import('./lib/fetch.js').Problem} Problem
 * @typedef {import('./lib/presign.js').PresignOptions} PresignOptions
 * @typedef {import('./lib/response.js').VerifyResponseOptions} VerifyResponseOptions
 * @typedef {import('./lib/digest.js').HashFactory} HashFactory
 */

/**
 * Builds the signature base of a message for one signature, without signing
 * or verifying anything: for debugging, and for comparing with the base a
 * server reports.
 *
 * `signature` is a Signature-Input member value (`("@method" …);created=…`),
 * a whole Signature-Input field value (`sig1=(…);…`; with several members,
 * options.label picks one), or { components, params }.
 * @param {import('./lib/message.js').MessageInput} message
 * @param {string | { components: string[], params?: import('./lib/signatures.js').ParamsInput }} signature
 * @param {{ label?: string, request?: import('./lib/message.js').MessageInput, scheme?: string,
 *   structuredFields?: Record<string, import('./lib/sf.js').FieldType> }} [options]
 * @returns {string}
 */
export function signatureBase(message, signature, options = {}) {
  const m = toMessage(message, { scheme: options.scheme });
  const request = options.request === undefined ? undefined : toMessage(options.request, { scheme: options.scheme });
  let components;
  let signatureParams;
  if (typeof signature === 'string') {
    const text = signature.trimStart().startsWith('(') ? `x=${signature.trim()}` : signature;
    const all = parseSignatureFields(text, undefined);
    const chosen = options.label === undefined ? all : all.filter((s) => s.label === options.label);
    if (chosen.length !== 1) throw new TypeError('signet: signatureBase needs exactly one signature; pass options.label');
    ({ components, signatureParams } = chosen[0]);
  } else if (signature && Array.isArray(signature.components)) {
    components = signature.components.map(parseComponent);
    const params = signature.params instanceof Map || Array.isArray(signature.params)
      ? [...signature.params]
      : Object.entries(signature.params || {}).filter(([, v]) => v !== undefined);
    signatureParams = serializeSignatureParams(components, params);
  } else {
    throw new TypeError('signet: signatureBase needs a Signature-Input value or { components, params }');
  }
  return buildBase(m, components, signatureParams, { request, structuredFields: options.structuredFields });
}
