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

/** At most this many signatures of one message are checked. */
export const MAX_SIGNATURES = 8;

/** The signature parameters required unless the policy says otherwise. */
export const DEFAULT_REQUIRED_PARAMS = Object.freeze(['created', 'keyid', 'nonce']);

// How long a nonce is remembered when neither a maximum age nor an expires
// parameter bounds its signature.
const UNBOUNDED_NONCE_TTL = 24 * 3600;

// The replay protection verify is given: a NonceStore, or null when the
// caller opted out (only allowed for a policy that does not require nonces).
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

function nowSeconds(now) {
  if (now === undefined) return Math.floor(Date.now() / 1000);
  if (now instanceof Date) return Math.floor(now.getTime() / 1000);
  if (typeof now === 'number' && Number.isFinite(now)) return Math.floor(now);
  throw new TypeError('signet: now must be a Date or Unix seconds');
}

function requiredFor(option, message, hasContent) {
  if (option === undefined) {
    // The default profile, for requests; a response must say what it needs.
    return message.kind === 'request' ? defaultComponents(message, hasContent || message.fields.has('content-digest')) : [];
  }
  const list = typeof option === 'function' ? option(message) : option;
  if (!Array.isArray(list)) throw new TypeError('signet: requiredComponents must be an array or a function returning one');
  return list.map(parseComponent);
}

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
  if (found === undefined || found === null) {
    throw refuse(Reason.UnknownKey, `no key has keyid ${JSON.stringify(keyId)}`, { label: info().label });
  }
  if (found instanceof Key) return found;
  if (typeof found === 'object' && 'key' in found) return importKey(found.key, found.alg);
  throw new TypeError('signet: a key resolver must return a Key or { alg, key }');
}

function withLabel(err, label) {
  if (err instanceof SignatureError && err.label === undefined) {
    return new SignatureError(err.reason, err.message.replace(/^signet: [a-z-]+: /, ''), { label, cause: err.cause });
  }
  if (err instanceof TypeError) return refuse(Reason.MalformedSignature, err.message, { label });
  return err;
}

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
    selected = selected.filter((s) => s.params.get('tag') === options.tag);
    if (selected.length === 0) throw refuse(Reason.MissingSignature, `the message has no signature with tag ${JSON.stringify(options.tag)}`);
  }
  if (selected.length === 0) throw refuse(Reason.MissingSignature, 'Signature-Input is empty');
  if (selected.length > MAX_SIGNATURES) {
    throw refuse(Reason.MalformedSignature, `the message carries more than ${MAX_SIGNATURES} signatures`);
  }
  return selected;
}

// An empty string parameter counts as absent, as in the Go package.
function present(p, name) {
  const v = p.get(name);
  return v !== undefined && v !== '';
}

// The policy checks that need no key: required parameters, a known alg,
// and the time window.
function checkParams(p, label, policy) {
  for (const name of policy.requiredParams) {
    if (!present(p, name)) {
      throw refuse(Reason.MalformedSignature, `the signature has no ${name} parameter, which is required`, { label });
    }
  }
  const alg = p.get('alg');
  if (alg !== undefined && !ALGORITHMS.includes(alg)) {
    throw refuse(Reason.AlgorithmMismatch, `unknown algorithm ${JSON.stringify(alg)}`, { label });
  }
  const { now } = policy;
  const created = p.get('created');
  if (created !== undefined) {
    if (created > now + policy.skew) {
      throw refuse(Reason.NotYetValid, `created is ${created - now} s in the future; check the clock against the Date header`, { label });
    }
    if (policy.maxAge !== null && now - created > policy.maxAge) {
      throw refuse(Reason.Expired, `created is ${now - created} s ago, more than the ${policy.maxAge} s allowed`, { label });
    }
  }
  const expires = p.get('expires');
  if (expires !== undefined && now >= expires) throw refuse(Reason.Expired, `the signature expired ${now - expires} s ago`, { label });
}

// The last moment a signature can pass the freshness check, so the least
// time its nonce must be remembered. The checks compare whole seconds: the
// age check passes while floor(now) - created <= maxAge, that is until
// created + maxAge + 1 s; the expires check passes while now < expires.
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
 * @param {any} input
 * @param {object} options  see VerifyOptions in index.d.ts
 */
export async function verify(input, options = {}) {
  const requiredParams = options.requiredParams === undefined ? DEFAULT_REQUIRED_PARAMS : options.requiredParams;
  const nonces = nonceStore(options, requiredParams);
  const message = toMessage(input, { scheme: options.scheme });
  const request = options.request === undefined ? undefined : toMessage(options.request, { scheme: options.scheme });
  const inputLines = message.fields.get('signature-input');
  const sigLines = message.fields.get('signature');
  if (!inputLines && !sigLines) throw refuse(Reason.MissingSignature, 'the message has no Signature-Input and Signature fields');
  if (!inputLines) throw refuse(Reason.MalformedSignature, 'the message has a Signature field but no Signature-Input field');
  if (!sigLines) throw refuse(Reason.MalformedSignature, 'the message has a Signature-Input field but no Signature field');

  const all = parseSignatureFields(inputLines.join(', '), sigLines.join(', '));
  for (const s of all) {
    if (!s.signature) throw refuse(Reason.MalformedSignature, 'Signature has no member for this label', { label: s.label });
  }
  const selected = select(all, options);

  const maxAge = options.maxAge === undefined ? 300 : options.maxAge;
  const policy = {
    now: nowSeconds(options.now),
    maxAge: maxAge === null || maxAge === Infinity || maxAge < 0 ? null : maxAge,
    skew: options.clockSkew === undefined ? 30 : Math.max(0, options.clockSkew),
    requiredParams,
  };

  const body = options.body !== undefined ? await readBody(options.body) : await messageBody(message);
  const required = requiredFor(options.requiredComponents, message, body !== null && body.length > 0);
  const digestField = message.fields.get('content-digest');

  const verified = [];
  for (const s of selected) {
    const { label } = s;
    const p = s.params;
    checkParams(p, label, policy);
    const covered = new Set(s.components.map((c) => c.canonical));
    for (const r of required) {
      if (!covered.has(r.canonical)) throw refuse(Reason.MissingComponent, `the signature must cover ${r.id}`, { label });
    }
    const keyId = p.get('keyid');
    if (!present(p, 'keyid')) throw refuse(Reason.UnknownKey, 'the signature has no keyid parameter', { label });
    const alg = p.get('alg');
    const key = await resolveKey(options.keys, keyId, () => ({ label, alg, params: plainParams(p) }));
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
    if (!key.verify(bytes, s.signature)) throw refuse(Reason.BadSignature, 'the signature does not match the message', { label });
    if (s.components.some((c) => c.name === 'content-digest' && c.params.size === 0)) {
      try {
        checkContentDigest(digestField.join(', '), body);
      } catch (err) {
        throw withLabel(err, label);
      }
    }

    verified.push({
      label,
      keyId,
      alg: key.alg,
      created: p.get('created'),
      expires: p.get('expires'),
      nonce: p.get('nonce'),
      tag: p.get('tag'),
      components: s.components.map((c) => c.id),
      params: plainParams(p),
      base,
    });
  }

  // Nonces are spent only once every signature has verified, so that a
  // forged companion signature cannot burn a genuine nonce.
  if (nonces) {
    for (const v of verified) {
      if (v.nonce === undefined || v.nonce === '') continue;
      const created = v.created === undefined ? undefined : new Date(v.created * 1000);
      const fresh = await nonces.remember(v.keyId, v.nonce, created, nonceUntil(v, policy));
      if (fresh !== true) throw refuse(Reason.Replayed, 'this nonce was already used', { label: v.label });
    }
  }

  return { ...verified[0], signatures: verified, body };
}
