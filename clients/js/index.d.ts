// Type declarations for @signet/client: HTTP Message Signatures (RFC 9421)
// with Content-Digest (RFC 9530) for Node.js 18+.

/// <reference types="node" />

import type { IncomingMessage } from 'node:http';
import type { JsonWebKey, KeyObject } from 'node:crypto';

// ---------------------------------------------------------------------------
// Messages

/**
 * Header fields: a `Headers`, a `Map`, an array of `[name, value]` pairs
 * (repeat a name to express several field lines), or a plain object whose
 * values are strings, numbers, or arrays of them.
 */
export type FieldsInput =
  | Headers
  | Map<string, string | string[]>
  | ReadonlyArray<readonly [string, string]>
  | Record<string, string | number | ReadonlyArray<string> | undefined>;

/**
 * A body. Bytes, strings and `URLSearchParams` are used as they are (strings
 * as UTF-8); a `Blob` is read; streams (`ReadableStream`, Node streams,
 * async iterables of bytes or strings) are read when needed.
 */
export type BodyInput =
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | URLSearchParams
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>
  | null;

/** A request given as a plain object. */
export interface PlainRequest {
  /** The method, used exactly as given (its case is never changed). */
  method: string;
  /**
   * The target: an absolute URL (the authority comes from it; a Host header
   * is ignored), or origin-form (`/path?query`, as a server receives it)
   * together with a Host header. The path and query are used raw, with
   * their percent-encoding kept.
   */
  url: string | URL;
  headers?: FieldsInput;
  body?: BodyInput;
  /** Trailer fields, for components with the `tr` parameter. */
  trailers?: FieldsInput;
  /** Scheme of an origin-form url; default "https". */
  scheme?: string;
  /** The request-target as on the request line when not origin-form (absolute-form, authority-form, `*`). */
  requestTarget?: string;
}

/** A response given as a plain object. */
export interface PlainResponse {
  status: number;
  headers?: FieldsInput;
  body?: BodyInput;
  trailers?: FieldsInput;
}

/**
 * Any message this package accepts: a WHATWG `Request` or `Response`, a
 * Node `IncomingMessage` (server-side request), or a plain object.
 */
export type MessageInput = Request | Response | IncomingMessage | PlainRequest | PlainResponse;

// ---------------------------------------------------------------------------
// Keys

/** The algorithms of RFC 9421 §3.3 this package signs and verifies with. */
export type Algorithm =
  | 'hmac-sha256'
  | 'ed25519'
  | 'ecdsa-p256-sha256'
  | 'ecdsa-p384-sha384'
  | 'rsa-pss-sha512'
  | 'rsa-v1_5-sha256';

export declare const ALGORITHMS: readonly Algorithm[];

/**
 * Key material: an HMAC secret as base64 text or bytes; PEM text (PKCS#8,
 * SPKI, PKCS#1, SEC1); a JWK object or JWK JSON text; a `KeyObject`; or a
 * `Key`.
 */
export type KeyMaterial = string | Uint8Array | ArrayBuffer | KeyObject | JsonWebKey | Key;

/**
 * A key bound to one algorithm. Safe to share between concurrent calls.
 * Its material never appears in `JSON.stringify` or `util.inspect`.
 */
export declare class Key {
  private constructor();
  readonly alg: Algorithm;
  readonly type: 'secret' | 'private' | 'public';
  /** Reports whether the key can sign (a secret or a private key). */
  readonly canSign: boolean;
  /** Signs the signature base bytes. Throws for a public key. */
  sign(data: Uint8Array): Buffer;
  /**
   * Reports whether `signature` is valid for `data`. MACs are compared in
   * constant time; a signature of the wrong size is simply invalid.
   */
  verify(data: Uint8Array, signature: Uint8Array): boolean;
  toJSON(): { alg: Algorithm; type: 'secret' | 'private' | 'public' };
}

/**
 * Imports key material and binds it to `alg`. Without `alg`, the algorithm
 * is inferred where the key type leaves no choice (secret → hmac-sha256,
 * Ed25519, P-256, P-384, RSASSA-PSS); other RSA keys need `alg`. Throws a
 * TypeError when the key does not fit the algorithm.
 */
export declare function importKey(material: KeyMaterial, alg?: Algorithm): Key;

/** Generates a key pair as PEM text (PKCS#8 private, SPKI public). */
export declare function generateKeyPair(alg: Exclude<Algorithm, 'hmac-sha256'>): { privateKey: string; publicKey: string };

/** Generates a 256-bit HMAC secret as base64 text. */
export declare function generateSecret(): string;

/** A key, or `{ alg, key }` material to import. */
export type KeyInput = Key | { alg?: Algorithm; key: KeyMaterial };

// ---------------------------------------------------------------------------
// Errors

/** The stable reason codes a Signet server ends its problem `type` with. */
export type ReasonCode =
  | 'missing-signature'
  | 'malformed-signature'
  | 'unknown-key'
  | 'key-revoked'
  | 'key-expired'
  | 'algorithm-mismatch'
  | 'missing-component'
  | 'expired'
  | 'not-yet-valid'
  | 'replayed'
  | 'digest-mismatch'
  | 'bad-signature'
  | 'insufficient-scope';

export declare const Reason: {
  readonly MissingSignature: 'missing-signature';
  readonly MalformedSignature: 'malformed-signature';
  readonly UnknownKey: 'unknown-key';
  readonly KeyRevoked: 'key-revoked';
  readonly KeyExpired: 'key-expired';
  readonly AlgorithmMismatch: 'algorithm-mismatch';
  readonly MissingComponent: 'missing-component';
  readonly Expired: 'expired';
  readonly NotYetValid: 'not-yet-valid';
  readonly Replayed: 'replayed';
  readonly DigestMismatch: 'digest-mismatch';
  readonly BadSignature: 'bad-signature';
  readonly InsufficientScope: 'insufficient-scope';
};

/**
 * The error of a refused message (from `verify`), or of a message that
 * cannot be signed as asked (a covered component it lacks). `reason` holds
 * one reason code; `label` names the signature concerned, if any. The
 * message never holds key material.
 */
export declare class SignatureError extends Error {
  constructor(reason: ReasonCode | string, detail: string, options?: { label?: string; cause?: unknown });
  readonly name: 'SignatureError';
  readonly reason: ReasonCode;
  readonly label: string | undefined;
}

// ---------------------------------------------------------------------------
// Signing

/** Options of `sign`. */
export interface SignOptions {
  /** The key id, sent as the `keyid` parameter. Required. */
  keyId: string;
  /** The signing key: a secret or a private key. Required. */
  key: KeyMaterial;
  /** The algorithm; inferred from the key when omitted (see importKey). */
  alg?: Algorithm;
  /** The signature label; default "sig1". */
  label?: string;
  /**
   * The covered components, in order, replacing the default profile. Each is
   * a serialized component identifier (`"@query-param";name="id"`,
   * `"example-dict";key="a"`) or a bare name (`@method`, `content-type`;
   * field names are lower-cased). A non-empty body always gets a fresh
   * Content-Digest, whether or not it is covered.
   *
   * Default profile, in this order, those present: `@method` `@authority`
   * `@path`; `@query` when the query is non-empty; `content-type` when
   * present; `content-digest` when the body is non-empty (or the message
   * carries Content-Digest). For a response: `@status`, then the same two
   * fields.
   */
  components?: string[];
  /** `created` in Unix seconds or as a Date; default now; `false` omits it. */
  created?: number | Date | false;
  /** `expires` in Unix seconds or as a Date. */
  expires?: number | Date;
  /** Sets `expires` this many seconds after `created` (when `expires` is not given). */
  expiresIn?: number;
  /** The nonce; default a fresh `generateNonce()`; `false` omits it. */
  nonce?: string | false;
  /** The `tag` parameter. */
  tag?: string;
  /** Whether to send the `alg` parameter; default true. */
  includeAlg?: boolean;
  /** The Content-Digest algorithm: "sha-256" (default) or "sha-512". */
  digestAlgorithm?: 'sha-256' | 'sha-512';
  /** The body to sign, when it is not (or no longer) in the message. */
  body?: BodyInput;
  /** The request a response answers, for components with `req`. */
  request?: MessageInput;
  /** Scheme of origin-form requests; default "https". */
  scheme?: string;
  /**
   * Top-level types of structured fields this package does not know, for the
   * `sf` parameter: `{ "example-dict": "dictionary" }`.
   */
  structuredFields?: Record<string, 'dictionary' | 'list' | 'item'>;
}

/** What `sign` returns. */
export interface SignResult {
  /**
   * The fields to set on the message, replacing any of the same name:
   * `Content-Digest` (when the body is not empty), `Signature-Input` and
   * `Signature`.
   * When the message already carried signatures, the last two hold those
   * too, with the new one added.
   */
  headers: {
    'Content-Digest'?: string;
    'Signature-Input': string;
    Signature: string;
  };
  /** The signature base that was signed, for debugging. */
  base: string;
  label: string;
  /** The `@signature-params` value: the Signature-Input member of this signature. */
  signatureParams: string;
  /** The raw signature bytes. */
  signature: Uint8Array;
}

/**
 * Signs a request (or a response) with the Signet default profile, or the
 * components given. Computes Content-Digest for a non-empty body; a stream
 * body can only be signed through a Content-Digest the caller set (or with
 * explicit components).
 */
export declare function sign(message: MessageInput, options: SignOptions): Promise<SignResult>;

/** A fresh nonce: 16 random bytes, base64url without padding. */
export declare function generateNonce(): string;

// ---------------------------------------------------------------------------
// Verifying

/** Finds the key for a keyid; return null/undefined for an unknown key. */
export type KeyResolver = (
  keyId: string | undefined,
  info: { label: string; alg: string | undefined; params: Record<string, unknown> },
) => KeyInput | null | undefined | Promise<KeyInput | null | undefined>;

/** Options of `verify`: the verifier's policy. */
export interface VerifyOptions {
  /**
   * How to find keys by keyid: a function, a Map, or an object. Return a
   * `Key` or `{ alg, key }`. A key is bound to one algorithm: a signature
   * whose `alg` names another is refused (algorithm-mismatch). To refuse a
   * key with a reason, throw a SignatureError (e.g. key-revoked); any other
   * error is passed through, so the caller fails closed.
   */
  keys: KeyResolver | Map<string, KeyInput> | Record<string, KeyInput>;
  /** Check only the signatures with these labels, which must all be present (missing-signature otherwise). */
  label?: string | string[];
  /** Check only signatures whose `tag` is this (missing-signature if none). */
  tag?: string;
  /**
   * Components every checked signature must cover: identifiers as in
   * SignOptions.components, or a function of the message. Default, for a
   * request: the default profile for this message (content-digest when it
   * has content or a Content-Digest field); for a response: nothing. `[]`
   * requires nothing.
   */
  requiredComponents?: string[] | ((message: unknown) => string[]);
  /** Maximum age of `created` in seconds; default 300; null, Infinity or negative: no limit. */
  maxAge?: number | null;
  /** Allowed clock skew into the future, in seconds; default 30. */
  clockSkew?: number;
  /**
   * Signature parameters every checked signature must carry (an empty string
   * counts as absent); default `["created", "keyid", "nonce"]`. A missing
   * one is malformed-signature.
   */
  requiredParams?: string[];
  /** If set, the only algorithms accepted (algorithm-mismatch otherwise). */
  algorithms?: Algorithm[];
  /**
   * Replay protection, required: a NonceStore (e.g. a MemoryNonceStore),
   * or `false` to opt out, which only a policy whose requiredParams leave
   * out "nonce" may do. Called only after every signature verified.
   */
  nonces: NonceStore | false;
  /** The current time, as a Date or Unix seconds; default now. */
  now?: Date | number;
  /** The body, when it is not (or no longer) in the message. */
  body?: BodyInput;
  /** The request a response answers, for components with `req`. */
  request?: MessageInput;
  /** Scheme of origin-form requests; default "https" for plain objects, from the socket for IncomingMessage. */
  scheme?: string;
  /** See SignOptions.structuredFields. */
  structuredFields?: Record<string, 'dictionary' | 'list' | 'item'>;
}

/**
 * Remembers nonces so that replays are refused. `remember` records
 * (keyId, nonce) until `until` (inclusive) and returns true, or returns
 * false when the pair is recorded already (the message is refused as
 * replayed). It throws when it cannot answer: the verifier fails closed.
 */
export interface NonceStore {
  remember(keyId: string, nonce: string, created: Date | undefined, until: Date): boolean | Promise<boolean>;
}

export interface MemoryNonceStoreOptions {
  /** Most entries held; default 131,072 (about 30 MB when full). A single key may use half. */
  maxEntries?: number;
  /** The clock entries expire by, in milliseconds; default Date.now. */
  now?: () => number | Date;
}

/**
 * A bounded in-memory NonceStore for one process. A key may add a nonce only
 * while it holds fewer than the store has room left; a nonce that finds no
 * room throws NonceStoreFullError (fail closed). Live entries are never
 * dropped to make room.
 */
export declare class MemoryNonceStore implements NonceStore {
  constructor(options?: MemoryNonceStoreOptions);
  /** Entries held, expired ones not yet dropped included. */
  readonly size: number;
  remember(keyId: string, nonce: string, created: Date | undefined, until: Date): boolean;
}

/** The error of a MemoryNonceStore with no room for a new nonce: answer 503. */
export declare class NonceStoreFullError extends Error {
  constructor(message: string);
}

/** One verified signature. */
export interface VerifiedSignature {
  label: string;
  keyId: string | undefined;
  alg: Algorithm;
  created: number | undefined;
  expires: number | undefined;
  nonce: string | undefined;
  tag: string | undefined;
  /** The covered component identifiers, serialized. */
  components: string[];
  /** All signature parameters, in received order. */
  params: Record<string, unknown>;
  /** The signature base that verified. */
  base: string;
}

/** What `verify` resolves to: the first checked signature, and all of them. */
export interface VerifyResult extends VerifiedSignature {
  signatures: VerifiedSignature[];
  /** The body as read for the digest check (null when there is none). */
  body: Uint8Array | null;
}

/**
 * Verifies a signed request (or response). Every selected signature (all of
 * them, at most 8, unless `label` or `tag` narrows the choice) must pass
 * every check; one good signature never excuses a bad one.
 *
 * Per signature, in this order (the same as the Go package):
 * required parameters (malformed-signature), a known `alg`
 * (algorithm-mismatch), `created` not in the future beyond the skew
 * (not-yet-valid) nor older than the maximum age (expired), `expires`
 * (expired), required components (missing-component), the key by keyid
 * (unknown-key, or the resolver's reason), the key's algorithm
 * (algorithm-mismatch), the signature base (missing-component,
 * malformed-signature), the signature (bad-signature), and, when the
 * signature covers content-digest, the body against Content-Digest
 * (digest-mismatch). Then nonces (replayed). Rejects with a SignatureError
 * carrying the reason code.
 */
export declare function verify(message: MessageInput, options: VerifyOptions): Promise<VerifyResult>;

// ---------------------------------------------------------------------------
// fetch

/** Options of `createSignedFetch`. */
export interface SignedFetchOptions {
  keyId: string;
  key: KeyMaterial;
  alg?: Algorithm;
  label?: string;
  components?: string[];
  tag?: string;
  /** Sets `expires` this many seconds after `created`. */
  expiresIn?: number;
  digestAlgorithm?: 'sha-256' | 'sha-512';
  /** The fetch to send with; default the global fetch. It receives a Request. */
  fetch?: (request: Request) => Promise<Response>;
  /** The local clock in milliseconds; default Date.now. */
  clock?: () => number;
  /** Whether to send a request again after a clock correction; default true. */
  retry?: boolean;
  /** The gateway's problem type base; default "https://signet.dev/problems/". */
  problemBase?: string;
}

/** A fetch that signs, with a clock offset learnt per origin. */
export interface SignedFetch {
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The server-minus-local time learnt for the origin of url, in seconds; 0 if none. */
  clockOffset(url: string | URL): number;
  /** Sets the offset for the origin of url (whole seconds). At most 256 origins are kept. */
  setClockOffset(url: string | URL, seconds: number): void;
}

/**
 * Creates a fetch that signs each request (with a fresh nonce) and sends it.
 * When the gateway refuses a request for a clock reason (401,
 * `WWW-Authenticate: Signature`, a problem type of problemBase followed by
 * "expired" or "not-yet-valid") and its Date moves the origin's offset by
 * two seconds or more the way that reason asks, the offset is corrected and
 * the request sent once more, if its body can be replayed (anything but a
 * stream sent with its own Content-Digest).
 */
export declare function createSignedFetch(options: SignedFetchOptions): SignedFetch;

/** RFC 9457 problem details, with `reason`: the last word of `type`. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  reason: string | undefined;
  [member: string]: unknown;
}

/** Reads the problem details of a response without consuming it; null if it is not problem+json. */
export declare function readProblem(response: Response): Promise<Problem | null>;

// ---------------------------------------------------------------------------
// Content-Digest

export type DigestAlgorithm = 'sha-256' | 'sha-512';
export declare const DIGEST_ALGORITHMS: readonly DigestAlgorithm[];

/**
 * Computes a Content-Digest field value (`sha-256=:…:`). Streams are hashed
 * chunk by chunk, and consumed. null is empty content.
 */
export declare function contentDigest(body: BodyInput | undefined, alg?: DigestAlgorithm): Promise<string>;

/**
 * Checks a received Content-Digest value against a body: unknown algorithms
 * are ignored, every known one must match, and at least one must be there.
 * Rejects with a SignatureError (digest-mismatch) otherwise.
 */
export declare function verifyContentDigest(fieldValue: string, body: BodyInput | undefined): Promise<void>;

// ---------------------------------------------------------------------------
// Fields and the signature base

/** A signature as found in Signature-Input (and Signature). */
export interface ParsedSignature {
  label: string;
  /** Serialized component identifiers. */
  components: string[];
  params: {
    created?: number;
    expires?: number;
    nonce?: string;
    alg?: string;
    keyid?: string;
    tag?: string;
    [param: string]: unknown;
  };
  /** The `@signature-params` value. */
  signatureParams: string;
  signature: Uint8Array | undefined;
}

/**
 * Parses Signature-Input (and Signature) field values, strictly: RFC 8941,
 * valid component identifiers, typed parameters, no label or parameter
 * twice. Throws a SignatureError (malformed-signature) otherwise.
 */
export declare function parseSignatures(signatureInput: string, signature?: string): ParsedSignature[];

/** Serializes signatures into Signature-Input and Signature field values. */
export declare function serializeSignatures(
  entries: ReadonlyArray<{
    label: string;
    components: string[];
    params?: Record<string, unknown> | Array<[string, unknown]> | Map<string, unknown>;
    signature?: Uint8Array;
  }>,
): { signatureInput: string; signature: string };

/** A server's request for a signature (RFC 9421 §5.1). */
export interface AcceptSignature {
  label: string;
  /** Serialized component identifiers, ready for SignOptions.components. */
  components: string[];
  /** Requested parameters, e.g. `{ keyid: "k", created: true, nonce: true }`. */
  params: Record<string, unknown>;
}

/** Parses an Accept-Signature field value. Throws a SyntaxError when invalid. */
export declare function parseAcceptSignature(value: string): AcceptSignature[];

/**
 * Builds the signature base of a message for one signature, signing nothing.
 * `signature` is a Signature-Input member value (`("@method" …);created=…`),
 * a Signature-Input field value (pick with `label` when there are several),
 * or `{ components, params }`.
 */
export declare function signatureBase(
  message: MessageInput,
  signature: string | { components: string[]; params?: Record<string, unknown> | Array<[string, unknown]> | Map<string, unknown> },
  options?: {
    label?: string;
    request?: MessageInput;
    scheme?: string;
    structuredFields?: Record<string, 'dictionary' | 'list' | 'item'>;
  },
): string;

// ---------------------------------------------------------------------------
// RFC 8941 structured fields

/** RFC 8941 structured-field values, parsed strictly and serialized canonically. */
export declare namespace sf {
  /** A Token, kept apart from String. */
  class Token {
    constructor(value: string);
    readonly value: string;
  }
  /** A Decimal; parsed decimals are always Decimal, so 2.0 stays "2.0". */
  class Decimal {
    constructor(value: number);
    readonly value: number;
  }
  /** string | boolean | number (Integer; Decimal if not an integer) | Decimal | Token | Uint8Array (Byte Sequence). */
  type BareItem = string | boolean | number | Decimal | Token | Uint8Array;
  type Parameters = Map<string, BareItem>;
  interface Item {
    value: BareItem;
    params: Parameters;
  }
  interface InnerList {
    value: Item[];
    params: Parameters;
  }
  type Member = Item | InnerList;
  type List = Member[];
  type Dictionary = Map<string, Member>;
  type FieldType = 'list' | 'dictionary' | 'item';

  /** Each throws a SyntaxError for anything the grammar rejects. */
  function parseList(input: string): List;
  /** With rejectDuplicates, a repeated key (or parameter) is a SyntaxError instead of "last wins". */
  function parseDictionary(input: string, options?: { rejectDuplicates?: boolean }): Dictionary;
  function parseItem(input: string): Item;
  function parse(input: string, type: FieldType): List | Dictionary | Item;

  /** Each throws a TypeError for a value that cannot be serialized. */
  function serializeList(list: ReadonlyArray<{ value: unknown; params?: Iterable<[string, unknown]> }>): string;
  function serializeDictionary(dict: Iterable<[string, { value: unknown; params?: Iterable<[string, unknown]> }]>): string;
  function serializeItem(member: { value: unknown; params?: Iterable<[string, unknown]> }): string;
  function serializeBareItem(value: unknown): string;
  function serializeParams(params: Iterable<[string, unknown]> | undefined): string;
  function serialize(value: unknown, type: FieldType): string;
  /** Reports whether `key` is a valid key. */
  function isKey(key: string): boolean;
}
