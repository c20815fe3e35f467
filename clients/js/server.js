// @signet/client/server: the server side, for Node.js. Verifies the
// RFC 9421 signatures of requests to an Express (4 or 5), Connect, Fastify
// or node:http server, and of WebSocket upgrades, as Signet's Go
// middleware does: the same checks in the same order, the same refusals
// (problem+json, reason codes, Accept-Signature, Date, WWW-Authenticate).
//
// Entry points: createVerifier (with verifier.middleware, .fastify,
// .handler, .verifyUpgrade, .requireScopes, .checkContinue); nonce stores
// MemoryNonceStore (one process) and RedisNonceStore (shared, with Signet
// gateways too); verifyApi, to let a Signet gateway verify; trustGateway,
// for a service behind a gateway that signs what it forwards. Everything of
// @signet/client/node is exported too.

export * from './node.js';
export { createVerifier, Verifier, Identity, DEFAULT_MAX_BODY_BYTES, DEFAULT_BODY_BUDGET } from './lib/server/verifier.js';
export { ServerReason, DEFAULT_PROBLEM_BASE } from './lib/server/problem.js';
export { RedisNonceStore, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT } from './lib/server/redis.js';
export { verifyApi, DEFAULT_VERIFY_API_TIMEOUT } from './lib/server/verify-api.js';
export {
  trustGateway, TrustGateway, parseGatewayKeys, GATEWAY_LABEL,
  DEFAULT_TRUST_MAX_AGE, DEFAULT_TRUST_CLOCK_SKEW, DEFAULT_KEYS_REFRESH, DEFAULT_KEYS_MIN_INTERVAL,
} from './lib/server/trust.js';

/**
 * @typedef {import('./lib/server/verifier.js').VerifierOptions} VerifierOptions
 * @typedef {import('./lib/server/verifier.js').ServerPolicy} ServerPolicy
 * @typedef {import('./lib/server/verifier.js').ServerKey} ServerKey
 * @typedef {import('./lib/server/verifier.js').ServerKeyResolver} ServerKeyResolver
 * @typedef {import('./lib/server/verifier.js').Outcome} Outcome
 * @typedef {import('./lib/server/problem.js').ServerReasonCode} ServerReasonCode
 * @typedef {import('./lib/server/redis.js').RedisNonceStoreOptions} RedisNonceStoreOptions
 * @typedef {import('./lib/server/redis.js').RedisClientLike} RedisClientLike
 * @typedef {import('./lib/server/verify-api.js').VerifyApi} VerifyApi
 * @typedef {import('./lib/server/verify-api.js').VerifyApiOptions} VerifyApiOptions
 * @typedef {import('./lib/server/verify-api.js').VerifyApiRequest} VerifyApiRequest
 * @typedef {import('./lib/server/verify-api.js').Verdict} Verdict
 * @typedef {import('./lib/server/trust.js').TrustGatewayOptions} TrustGatewayOptions
 * @typedef {import('./lib/server/trust.js').Vouched} Vouched
 * @typedef {import('./lib/server/trust.js').GatewayKey} GatewayKey
 */
