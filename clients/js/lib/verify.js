// Verification (RFC 9421 §3.2) against a policy. The checks, their order and
// their reason codes follow the Go package (httpsig.Verifier), so that both
// refuse the same message for the same reason.

import { buildBase, parseComponent } from './components.js';
import { checkContentDigest } from './digest.js';
import { refuse, Reason, SignatureError } from './errors.js';
import { ALGORITHMS, Key, importKey } from './keys.js';
import { messageBody, readBody, toMessage } from './message.js';
import { baseBytes, defaultComponents } from './sign.js';
import { parseSignatureFields, plainParams } from './signatures.js';

/**
 * A key, or key material to import (see importKey).
 * @typedef {import('./keys.js').Key | { alg?: import('./keys.js').Algorithm, key: import('./keys.js').KeyMaterial }} KeyInput
 */

/**
 * Finds the key for a keyid: a Key or { alg, key }, or null/undefined for an
 * unknown key. To refuse a key with a reason, throw a SignatureError (e.g.
 * key-revoked); any other error is passed through, so the caller fails
 * closed.
 * @callback KeyResolver
 * @param {string} keyId
 * @param {{ label: string, alg: string | undefined, params: import('./signatures.js').SignatureParams }} info
 * @returns {KeyInput | null | undefined | Promise<KeyInput | null | undefined>}
 */

/**
 * Options of verify: the verifier's policy.
 * @typedef {object} VerifyOptions
 * @property {KeyResolver | Map<string, KeyInput | Promise<KeyInput>> | Record<string, KeyInput | Promise<KeyInput>>} keys
 *   how to find keys by keyid. A key is bound to one algorithm: a signature
 *   whose `alg` names another is refused (algorithm-mismatch).
 * @property {import('./nonces.js').NonceStore | false} nonces  replay
 *   protection, required: a NonceStore (e.g. a MemoryNonceStore), or false
 *   to opt out, which only a policy whose requiredParams leave out "nonce"
 *   may do
 * @property {string | string[]} [label]  check only the signatures with these
 *   labels, which must all be present (missing-signature otherwise)
 * @property {string | string[]} [tag]  check only signatures whose `tag` is this, or one of these (missing-signature if none)
 * @property {string[] | ((message: import('./message.js').Message) => string[])} [requiredComponents]
 *   components every checked signature must cover, as in SignOptions.components,
 *   or a function of the message. Default, for a request: the default
 *   profile for this message (content-digest when it has content or a
 *   Content-Digest field); for a response: nothing. `[]` requires nothing.
 * @property {number | null} [maxAge]  maximum age of `created` in seconds;
 *   default 300; null, Infinity or negative: no limit
 * @property {number} [clockSkew]  allowed clock skew into the future, in seconds; default 30
 * @property {string[]} [requiredParams]  signature parameters every checked
 *   signature must carry (an empty string counts as absent); default
 *   ["created", "keyid", "nonce"]; a missing one is malformed-signature
 * @property {import('./keys.js').Algorithm[]} [algorithms]  if set, the only algorithms accepted
 * @property {Date | number} [now]  the current time, as a Date or Unix seconds; default now
 * @property {import('./message.js').BodyInput} [body]  the body, when it is not (or no longer) in the message
 * @property {import('./message.js').MessageInput} [request]  the request a response answers, for components with `req`
 * @property {string} [scheme]  of origin-form requests; default "https" for
 *   plain objects, from the socket for an IncomingMessage
 * @property {Record<string, import('./sf.js').FieldType>} [structuredFields]  see SignOptions.structuredFields
 * @property {boolean} [debug]  puts the signature base the verifier built
 *   on a bad-signature SignatureError (`base`), so that a developer can
 *   compare it with the signer's; it tells whoever sees it what the
 *   verifier would accept: never show it to clients in production
 */

/**
 * One verified signature.
 * @typedef {object} VerifiedSignature
 * @property {string} label
 * @property {string} keyId
 * @property {import('./keys.js').Algorithm} alg
 * @property {number | undefined} created
 * @property {number | undefined} expires
 * @property {string | undefined} nonce
 * @property {string | undefined} tag
 * @property {string[]} components  the covered component identifiers, serialized
 * @property {import('./signatures.js').SignatureParams} params  all signature parameters, in received order
 * @property {string} base  the signature base that verified
 */

/**
 * What verify resolves to: the first checked signature, and all of them.
 * @typedef {VerifiedSignature & { signatures: VerifiedSignature[], body: Uint8Array | null }} VerifyResult
 *   body: the body as read for the digest check (null when there is none)
 */

/**
 * @typedef {object} Policy
 * @property {number} now  Unix seconds
 * @property {number | null} maxAge
 * @property {number} skew
 * @property {readonly string[]} requiredParams
 */

/** At most this many signatures of one message are checked. */
export const MAX_SIGNATURES = 8;

/** The signature parameters required unless the policy says otherwise. */
export const DEFAULT_REQUIRED_PARAMS = Object.freeze(['created', 'keyid', 'nonce']);

// How long a nonce is remembered when neither a maximum age nor an expires
// parameter bounds its signature.
const UNBOUNDED_NONCE_TTL = 24 * 3600;

/**
 * The replay protection verify is given: a NonceStore, or null when the
 * caller opted out (only allowed for a policy that does not require nonces).
 * @param {VerifyOptions} options
 * @param {readonly string[]} requiredParams
 */
function nonceStore(options, requiredParams) {
  const store = options.nonces;
  if (store === false) {
    if (requiredParams.includes('nonce')) {
      throw new TypeError('signet: nonces: false needs a policy that does not require a nonce (requiredParams without "nonce")');
    }
    return null;
  }
  if (store === undefined || store === null) {
    throw new TypeError('signet: verify needs a nonce store (options.nonces, e.g. new MemoryNonceStore()); replay protection is not optional');
  }
  if (typeof store.remember !== 'function') throw new TypeError('signet: options.nonces must have a remember method');
  return store;
}

/**
 * @param {unknown} now
 * @returns {number}
 */
function nowSeconds(now) {
  if (now === undefined) return Math.floor(Date.now() / 1000);
  if (now instanceof Date) return Math.floor(now.getTime() / 1000);
  if (typeof now === 'number' && Number.isFinite(now)) return Math.floor(now);
  throw new TypeError('signet: now must be a Date or Unix seconds');
}

/**
 * @param {VerifyOptions['requiredComponents']} option
 * @param {import('./message.js').Message} message
 * @param {boolean} hasContent
 */
function requiredFor(option, message, hasContent) {
  if (option === undefined) {
    // The default profile, for requests; a response must say what it needs.
    return message.kind === 'request' ? defaultComponents(message, hasContent || message.fields.has('content-digest')) : [];
  }
  const list = typeof option === 'function' ? option(message) : option;
  if (!Array.isArray(list)) throw new TypeError('signet: requiredComponents must be an array or a function returning one');
  return list.map(parseComponent);
}

/**
 * @param {VerifyOptions['keys']} keys
 * @param {string} keyId
 * @param {() => { label: string, alg: string | undefined, params: import('./signatures.js').SignatureParams }} info
 * @returns {Promise<import('./keys.js').Key>}
 */
async function resolveKey(keys, keyId, info) {
  let found;
  if (typeof keys === 'function') {
    found = await keys(keyId, info());
  } else if (keys instanceof Map) {
    found = keys.get(keyId);
  } else if (keys && typeof keys === 'object') {
    found = Object.prototype.hasOwnProperty.call(keys, keyId) ? keys[keyId] : undefined;
  } else {
    throw new TypeError('signet: verify needs keys (a function, a Map or an object keyed by keyid)');
  }
  // A Map or object may hold keys still being imported.
  found = await found;
  if (found === undefined || found === null) {
    throw refuse(Reason.UnknownKey, `no key has keyid ${JSON.stringify(keyId)}`, { label: info().label });
  }
  if (found instanceof Key) return found;
  if (typeof found === 'object' && 'key' in found) {
    let key = imported.get(found);
    if (!key) {
      key = importKey(found.key, found.alg);
      imported.set(found, key);
    }
    return key;
  }
  throw new TypeError('signet: a key resolver must return a Key or { alg, key }');
}

// The keys imported from { alg, key } entries, so that a table of them is
// imported once, not on every request.
/** @type {WeakMap<object, Promise<import('./keys.js').Key>>} */
const imported = new WeakMap();

/**
 * @param {unknown} err
 * @param {string} label
 */
function withLabel(err, label) {
  if (err instanceof SignatureError && err.label === undefined) {
    return new SignatureError(err.reason, err.message.replace(/^signet: [a-z-]+: /, ''), { label, cause: err.cause });
  }
  if (err instanceof TypeError) return refuse(Reason.MalformedSignature, err.message, { label });
  return err;
}

/**
 * Names the keyid of the signature concerned in a refusal.
 * @param {unknown} err
 * @param {unknown} keyId
 */
function withKeyId(err, keyId) {
  if (err instanceof SignatureError && err.keyId === undefined && typeof keyId === 'string' && keyId !== '') err.keyId = keyId;
  return err;
}

/**
 * @param {import('./signatures.js').ParsedSignatureFields[]} all
 * @param {VerifyOptions} options
 */
function select(all, options) {
  let selected = all;
  if (options.label !== undefined) {
    const labels = Array.isArray(options.label) ? options.label : [options.label];
    selected = labels.map((l) => {
      const s = all.find((x) => x.label === l);
      if (!s) throw refuse(Reason.MissingSignature, 'the message has no signature with this label', { label: l });
      return s;
    });
  }
  if (options.tag !== undefined) {
    const tags = Array.isArray(options.tag) ? options.tag : [options.tag];
    selected = selected.filter((s) => tags.includes(/** @type {string} */ (s.params.get('tag'))));
    if (selected.length === 0) throw refuse(Reason.MissingSignature, `the message has no signature with tag ${tags.map((t) => JSON.stringify(t)).join(' or ')}`);
  }
  if (selected.length === 0) throw refuse(Reason.MissingSignature, 'Signature-Input is empty');
  if (selected.length > MAX_SIGNATURES) {
    throw refuse(Reason.MalformedSignature, `the message carries more than ${MAX_SIGNATURES} signatures`);
  }
  return selected;
}

/**
 * An empty string parameter counts as absent, as in the Go package.
 * @param {import('./signatures.js').SignatureParams} p
 * @param {string} name
 */
function present(p, name) {
  const v = p[name];
  return v !== undefined && v !== '';
}

/**
 * The policy checks that need no key: required parameters, a known alg,
 * and the time window.
 * @param {import('./signatures.js').SignatureParams} p
 * @param {string} label
 * @param {Policy} policy
 */
function checkParams(p, label, policy) {
  for (const name of policy.requiredParams) {
    if (!present(p, name)) {
      throw refuse(Reason.MalformedSignature, `the signature has no ${name} parameter, which is required`, { label });
    }
  }
  const alg = p.alg;
  if (alg !== undefined && !(/** @type {readonly string[]} */ (ALGORITHMS)).includes(alg)) {
    throw refuse(Reason.AlgorithmMismatch, `unknown algorithm ${JSON.stringify(alg)}`, { label });
  }
  const { now } = policy;
  const created = p.created;
  if (created !== undefined) {
    if (created > now + policy.skew) {
      throw refuse(Reason.NotYetValid, `created is ${created - now} s in the future; check the clock against the Date header`, { label });
    }
    if (policy.maxAge !== null && now - created > policy.maxAge) {
      throw refuse(Reason.Expired, `created is ${now - created} s ago, more than the ${policy.maxAge} s allowed`, { label });
    }
  }
  const expires = p.expires;
  if (expires !== undefined && now >= expires) throw refuse(Reason.Expired, `the signature expired ${now - expires} s ago`, { label });
}

/**
 * The last moment a signature can pass the freshness check, so the least
 * time its nonce must be remembered. The checks compare whole seconds: the
 * age check passes while floor(now) - created <= maxAge, that is until
 * created + maxAge + 1 s; the expires check passes while now < expires.
 * @param {VerifiedSignature} v
 * @param {Policy} policy
 */
function nonceUntil(v, policy) {
  let until;
  if (policy.maxAge !== null && v.created !== undefined) until = v.created + policy.maxAge + 1;
  if (v.expires !== undefined && (until === undefined || v.expires < until)) until = v.expires;
  return new Date((until === undefined ? policy.now + UNBOUNDED_NONCE_TTL : until) * 1000);
}

/**
 * Verifies the signatures of a request (or a response) against a policy.
 * Every signature selected (all of them, unless label or tag narrows the
 * choice) must pass every check: one good signature never excuses a bad
 * one. Resolves to details of the verified signatures; rejects with a
 * SignatureError carrying a reason code when the message is refused.
 * The checks, per signature, in the Go package's order: required
 * parameters (malformed-signature), a known `alg` (algorithm-mismatch),
 * `created` not in the future beyond the skew (not-yet-valid) nor older
 * than the maximum age (expired), `expires` (expired), required components
 * (missing-component), the key by keyid (unknown-key, or the resolver's
 * reason), the key's algorithm (algorithm-mismatch), the signature base
 * (missing-component, malformed-signature), the signature (bad-signature),
 * and, when the signature covers content-digest, the body against
 * Content-Digest (digest-mismatch). Then the nonces (replayed).
 * @param {import('./message.js').MessageInput} input
 * @param {VerifyOptions} options
 * @returns {Promise<VerifyResult>}
 */
export async function verify(input, options) {
  if (!options || typeof options !== 'object') throw new TypeError('signet: verify needs options');
  const requiredParams = options.requiredParams === undefined ? DEFAULT_REQUIRED_PARAMS : options.requiredParams;
  const nonces = nonceStore(options, requiredParams);
  const message = toMessage(input, { scheme: options.scheme });
  const fields = signatureFields(message);
  const body = options.body !== undefined ? await readBody(options.body) : await messageBody(message);
  const { verified } = await check(message, fields, options, { nonces, requiredParams, body, hasContent: body !== null && body.length > 0 });
  return { ...verified[0], signatures: verified, body };
}

/**
 * What verifyHeader resolves to.
 * @typedef {object} HeaderResult
 * @property {VerifiedSignature[]} signatures  the checked signatures, all verified
 * @property {string | undefined} contentDigest  when a checked signature
 *   covers content-digest: the Content-Digest field value (its lines
 *   combined) that the content must match before the message is acted on
 * @property {import('./components.js').Component[]} covered  the components
 *   the checked signatures cover, those of the first first
 */

/**
 * Hooks of verifyHeader: how to check a signature, where a runtime has a
 * faster way than Web Crypto.
 * @typedef {object} VerifyHooks
 * @property {(key: import('./keys.js').Key, data: Uint8Array, signature: Uint8Array) => boolean | Promise<boolean>} [verifySignature]
 */

/**
 * Checks the signatures of a request before its content is read, so that
 * a server reads no body for a request it refuses: everything verify
 * checks (policy, key, signature, nonce) but the content against the
 * Content-Digest field. Nonces are spent before the content is checked;
 * when the result's contentDigest is set, the caller must read the
 * content and check it (checkContentDigest) before acting on the request.
 * `hasContent` says whether the request has content (a non-zero or unknown
 * length), which decides whether the default profile demands
 * content-digest.
 * @param {import('./message.js').Message} message
 * @param {VerifyOptions} options
 * @param {boolean} hasContent
 * @param {VerifyHooks} [hooks]
 * @returns {Promise<HeaderResult>}
 */
export async function verifyHeader(message, options, hasContent, hooks = {}) {
  const requiredParams = options.requiredParams === undefined ? DEFAULT_REQUIRED_PARAMS : options.requiredParams;
  const nonces = nonceStore(options, requiredParams);
  const fields = signatureFields(message);
  const { verified, selected, digestCovered } = await check(message, fields, options, { nonces, requiredParams, body: undefined, hasContent, hooks });
  const digest = message.fields.get('content-digest');
  return {
    signatures: verified,
    contentDigest: digestCovered && digest ? digest.join(', ') : undefined,
    covered: selected.flatMap((s) => s.components),
  };
}

/**
 * The Signature-Input and Signature field values of a message, parsed.
 * @param {import('./message.js').Message} message
 */
function signatureFields(message) {
  const inputLines = message.fields.get('signature-input');
  const sigLines = message.fields.get('signature');
  if (!inputLines && !sigLines) throw refuse(Reason.MissingSignature, 'the message has no Signature-Input and Signature fields');
  if (!inputLines) throw refuse(Reason.MalformedSignature, 'the message has a Signature field but no Signature-Input field');
  if (!sigLines) throw refuse(Reason.MalformedSignature, 'the message has a Signature-Input field but no Signature field');
  const all = parseSignatureFields(inputLines.join(', '), sigLines.join(', '));
  for (const s of all) {
    if (!s.signature) throw refuse(Reason.MalformedSignature, 'Signature has no member for this label', { label: s.label });
  }
  return all;
}

/**
 * The checks of verify and verifyHeader. With body undefined, a covered
 * content-digest is left to the caller (digestCovered).
 * @param {import('./message.js').Message} message
 * @param {import('./signatures.js').ParsedSignatureFields[]} all
 * @param {VerifyOptions} options
 * @param {{ nonces: import('./nonces.js').NonceStore | null, requiredParams: readonly string[],
 *   body: Uint8Array | null | undefined, hasContent: boolean, hooks?: VerifyHooks }} ctx
 */
async function check(message, all, options, ctx) {
  const { nonces, body, hooks = {} } = ctx;
  const request = options.request === undefined ? undefined : toMessage(options.request, { scheme: options.scheme });
  const selected = select(all, options);

  const maxAge = options.maxAge === undefined ? 300 : options.maxAge;
  const policy = {
    now: nowSeconds(options.now),
    maxAge: maxAge === null || maxAge === Infinity || maxAge < 0 ? null : maxAge,
    skew: options.clockSkew === undefined ? 30 : Math.max(0, options.clockSkew),
    requiredParams: ctx.requiredParams,
  };

  const required = requiredFor(options.requiredComponents, message, ctx.hasContent);
  const digestField = message.fields.get('content-digest');
  let digestCovered = false;

  /**
   * @param {import('./signatures.js').ParsedSignatureFields} s
   * @returns {Promise<VerifiedSignature>}
   */
  const checkOne = async (s) => {
    const { label } = s;
    const p = plainParams(s.params);
    checkParams(p, label, policy);
    const covered = new Set(s.components.map((c) => c.canonical));
    for (const r of required) {
      if (!covered.has(r.canonical)) throw refuse(Reason.MissingComponent, `the signature must cover ${r.id}`, { label });
    }
    const keyId = p.keyid;
    if (keyId === undefined || keyId === '') throw refuse(Reason.UnknownKey, 'the signature has no keyid parameter', { label });
    const alg = p.alg;
    const key = await resolveKey(options.keys, keyId, () => ({ label, alg, params: { ...p } }));
    if (alg !== undefined && alg !== key.alg) {
      throw refuse(Reason.AlgorithmMismatch, `the key is bound to ${key.alg}, the signature says ${JSON.stringify(alg)}`, { label });
    }
    if (options.algorithms !== undefined && !options.algorithms.includes(key.alg)) {
      throw refuse(Reason.AlgorithmMismatch, `algorithm ${key.alg} is not accepted here`, { label });
    }

    let base;
    let bytes;
    try {
      base = buildBase(message, s.components, s.signatureParams, { request, structuredFields: options.structuredFields });
      bytes = baseBytes(base);
    } catch (err) {
      throw withLabel(err, label);
    }
    const signature = /** @type {Uint8Array} */ (s.signature);
    const good = hooks.verifySignature ? await hooks.verifySignature(key, bytes, signature) : await key.verify(bytes, signature);
    if (!good) {
      throw refuse(Reason.BadSignature, 'the signature does not match the message', { label, base: options.debug ? base : undefined });
    }
    if (s.components.some((c) => c.name === 'content-digest' && c.params.size === 0)) {
      if (body === undefined) {
        digestCovered = true;
      } else {
        try {
          // Covered, so the base had the field.
          await checkContentDigest(/** @type {string[]} */ (digestField).join(', '), body);
        } catch (err) {
          throw withLabel(err, label);
        }
      }
    }

    return {
      label,
      keyId,
      alg: key.alg,
      created: p.created,
      expires: p.expires,
      nonce: p.nonce,
      tag: p.tag,
      components: s.components.map((c) => c.id),
      params: p,
      base,
    };
  };

  /** @type {VerifiedSignature[]} */
  const verified = [];
  for (const s of selected) {
    try {
      verified.push(await checkOne(s));
    } catch (err) {
      throw withKeyId(err, s.params.get('keyid'));
    }
  }

  // Nonces are spent only once every signature has verified, so that a
  // forged companion signature cannot burn a genuine nonce.
  if (nonces) {
    for (const v of verified) {
      if (v.nonce === undefined || v.nonce === '') continue;
      const created = v.created === undefined ? undefined : new Date(v.created * 1000);
      const fresh = await nonces.remember(v.keyId, v.nonce, created, nonceUntil(v, policy));
      if (fresh !== true) throw withKeyId(refuse(Reason.Replayed, 'this nonce was already used', { label: v.label }), v.keyId);
    }
  }

  return { verified, selected, digestCovered };
}
