// Reason codes and the error type of a refused (or unsignable) message.

/**
 * The stable reason codes of DESIGN.md. A Signet server puts one at the end
 * of the `type` of its problem+json answer; `verify` puts one in
 * `SignatureError.reason`.
 */
export const Reason = Object.freeze(/** @type {const} */ ({
  MissingSignature: 'missing-signature',
  MalformedSignature: 'malformed-signature',
  UnknownKey: 'unknown-key',
  KeyRevoked: 'key-revoked',
  KeyDisabled: 'key-disabled',
  KeyExpired: 'key-expired',
  AlgorithmMismatch: 'algorithm-mismatch',
  MissingComponent: 'missing-component',
  Expired: 'expired',
  NotYetValid: 'not-yet-valid',
  Replayed: 'replayed',
  DigestMismatch: 'digest-mismatch',
  BadSignature: 'bad-signature',
  InsufficientScope: 'insufficient-scope',
}));

/** @typedef {typeof Reason[keyof typeof Reason]} ReasonCode */

/**
 * The error of a message that was refused, or that could not be signed
 * because it lacks a component. `reason` holds one reason code; `label` names
 * the signature concerned, if any; `base`, only when verify's `debug`
 * option is set, the signature base a bad-signature refusal was checked
 * against. The message never holds key material.
 */
export class SignatureError extends Error {
  /**
   * @param {ReasonCode} reason
   * @param {string} detail
   * @param {{ label?: string, cause?: unknown, base?: string }} [options]
   */
  constructor(reason, detail, options = {}) {
    const where = options.label ? ` (${options.label})` : '';
    super(`signet: ${reason}${where}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    /** @type {'SignatureError'} */
    this.name = 'SignatureError';
    /** The reason code. */
    this.reason = reason;
    /** The label of the signature concerned, if any. */
    this.label = options.label;
    /** What was wrong, without the reason and label. */
    this.detail = detail;
    /**
     * The keyid of the signature concerned, once verify knows it.
     * @type {string | undefined}
     */
    this.keyId = undefined;
    /** The signature base, in debug mode. */
    this.base = options.base;
  }
}

/**
 * Shorthand used throughout the package.
 * @param {ReasonCode} reason
 * @param {string} detail
 * @param {{ label?: string, cause?: unknown, base?: string }} [options]
 */
export function refuse(reason, detail, options) {
  return new SignatureError(reason, detail, options);
}
