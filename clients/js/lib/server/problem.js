// Refusals as the Go middleware writes them: RFC 9457 problem+json whose
// type ends in the reason code, with Date, Cache-Control: no-store, and
// WWW-Authenticate and Accept-Signature on a 401.

import * as sf from '../sf.js';

/** The problem type base of a verifier made without problemBase. */
export const DEFAULT_PROBLEM_BASE = 'https://signet.dev/problems/';

/**
 * The reason codes of refusals that are not about a signature, beside
 * those of Reason.
 */
export const ServerReason = Object.freeze(/** @type {const} */ ({
  /** 413: the body is over maxBodyBytes. */
  BodyTooLarge: 'body-too-large',
  /** 400: the body broke off. */
  BadBody: 'unreadable-body',
  /** 503, with Retry-After: a key or nonce store could not answer, or the body budget is spent. */
  Unavailable: 'unavailable',
  /** 400: the request target has a fragment, or is not in origin form. */
  InvalidTarget: 'invalid-target',
  /** 400: the Host field is missing, repeated, or not a plain host and port. */
  InvalidHost: 'invalid-host',
  /** 400: a signature covers a field that a proxy removes. */
  HopByHop: 'hop-by-hop-field',
  /** 400: a covered field has several lines that cannot be one value. */
  InvalidField: 'invalid-field',
  /** 400: the request has trailer fields. */
  Trailers: 'trailers-not-accepted',
}));

/** @typedef {typeof ServerReason[keyof typeof ServerReason]} ServerReasonCode */

/** @type {Record<string, string>} */
const TITLES = {
  'missing-signature': 'Missing signature',
  'malformed-signature': 'Malformed signature',
  'unknown-key': 'Unknown key',
  'key-revoked': 'Key revoked',
  'key-disabled': 'Key disabled',
  'key-expired': 'Key expired',
  'algorithm-mismatch': 'Algorithm mismatch',
  'missing-component': 'Missing component',
  expired: 'Signature expired',
  'not-yet-valid': 'Signature not yet valid',
  replayed: 'Replayed request',
  'digest-mismatch': 'Digest mismatch',
  'bad-signature': 'Bad signature',
  'insufficient-scope': 'Insufficient scope',
  'body-too-large': 'Request body too large',
  'unreadable-body': 'Unreadable request body',
  unavailable: 'Authentication unavailable',
  'invalid-target': 'Invalid request target',
  'invalid-host': 'Invalid Host',
  'hop-by-hop-field': 'Covered field is hop-by-hop',
  'invalid-field': 'Covered field cannot be passed on',
  'trailers-not-accepted': 'Trailers not accepted',
  'rate-limited': 'Rate limited',
  'uses-exhausted': 'Uses exhausted',
};

/**
 * The RFC 9457 body of a refusal, as the Go middleware writes it.
 * @typedef {object} Problem
 * @property {string} type
 * @property {string} title
 * @property {number} status
 * @property {string} [detail]
 * @property {string} [signature]  the label of the signature concerned
 * @property {string} [signature_base]  the base the server built, in debug mode only
 */

/**
 * A refusal: everything needed to answer it and to report it.
 * @typedef {object} Refusal
 * @property {number} status
 * @property {string} reason
 * @property {string} detail     for the client
 * @property {unknown} [error]   the cause, for onOutcome (never sent)
 * @property {string} [label]
 * @property {string} [keyId]
 * @property {string} [base]     in debug mode
 * @property {boolean} [unread]  the body was not read to its end: the
 *   connection is closed rather than drained
 * @property {Problem} [problem] the whole problem body, when it came made
 *   (from the verify API)
 * @property {string} [acceptSignature]  when it came made
 * @property {Record<string, string>} [headers]  other fields of the answer
 *   (the RateLimit fields and Retry-After of a limited key, from the verify
 *   API)
 */

/**
 * @param {number} status
 * @param {string} reason
 * @param {string} detail
 * @param {Partial<Refusal>} [more]
 * @returns {Refusal}
 */
export function refusal(status, reason, detail, more) {
  return { status, reason, detail, ...more };
}

/**
 * The problem body of a refusal.
 * @param {Refusal} r
 * @param {string} problemBase
 * @returns {Problem}
 */
export function problemOf(r, problemBase) {
  if (r.problem) return r.problem;
  /** @type {Problem} */
  const p = { type: problemBase + r.reason, title: TITLES[r.reason] || r.reason, status: r.status };
  if (r.detail) p.detail = r.detail;
  if (r.label) p.signature = r.label;
  if (r.base) p.signature_base = r.base;
  return p;
}

// JSON as Go's encoding/json writes it (HTML-safe), so that a client sees
// the same bytes from a Node server as from a Go one.
const GO_ESCAPES = /** @type {Record<string, string>} */ ({ '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' });

/** @param {unknown} value */
export function goJSON(value) {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]);
}

/**
 * The status line reason phrases of the statuses a refusal may have.
 * @type {Record<number, string>}
 */
export const STATUS_TEXT = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 413: 'Content Too Large', 503: 'Service Unavailable',
};

/**
 * The header fields and body of a refusal's response.
 * @param {Problem} p
 * @param {number} nowMs
 * @param {Record<string, string>} [extra]
 * @returns {{ status: number, headers: Record<string, string>, body: string }}
 */
export function problemResponse(p, nowMs, extra = {}) {
  const body = goJSON(p);
  return {
    status: p.status,
    headers: {
      ...extra,
      'Content-Type': 'application/problem+json',
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
      Date: new Date(nowMs).toUTCString(),
    },
    body,
  };
}

/**
 * An Accept-Signature field value asking for one signature with these
 * components (serialized identifiers) and tag.
 * @param {string} label
 * @param {readonly string[]} ids
 * @param {string} [tag]
 */
export function acceptSignature(label, ids, tag) {
  return `${label}=(${ids.join(' ')})${tag ? sf.serializeParams([['tag', tag]]) : ''}`;
}
