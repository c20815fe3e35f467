// The Signature-Input, Signature and Accept-Signature fields (RFC 9421 §4,
// §5.1).

import * as sf from './sf.js';
import { componentFromItem, parseComponent, serializeSignatureParams } from './components.js';
import { refuse, Reason, SignatureError } from './errors.js';

const INTEGER_PARAMS = new Set(['created', 'expires']);
const STRING_PARAMS = new Set(['nonce', 'alg', 'keyid', 'tag']);

/**
 * @param {string} detail
 * @param {string} [label]
 */
function malformed(detail, label) {
  return refuse(Reason.MalformedSignature, detail, { label });
}

/**
 * Signature parameters as plain values (Tokens and Decimals unwrapped).
 * @typedef {{ created?: number, expires?: number, nonce?: string, alg?: string, keyid?: string, tag?: string,
 *   [param: string]: unknown }} SignatureParams
 */

/**
 * Converts sf parameter values to plain JavaScript values.
 * @param {Map<string, sf.BareItem>} params
 * @returns {SignatureParams}
 */
export function plainParams(params) {
  /** @type {SignatureParams} */
  const out = {};
  for (const [k, v] of params) {
    if (v instanceof sf.Token) out[k] = v.value;
    else if (v instanceof sf.Decimal) out[k] = v.value;
    else out[k] = v;
  }
  return out;
}

/**
 * @param {Map<string, sf.BareItem>} params
 * @param {string} label
 */
function checkSignatureParams(params, label) {
  for (const [k, v] of params) {
    if (INTEGER_PARAMS.has(k) && !(typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      throw malformed(`parameter ${k} must be a non-negative Integer`, label);
    }
    if (STRING_PARAMS.has(k) && typeof v !== 'string') throw malformed(`parameter ${k} must be a String`, label);
  }
}

/**
 * One signature of a message, as parsed from its fields.
 * @typedef {object} ParsedSignatureFields
 * @property {string} label
 * @property {import('./components.js').Component[]} components
 * @property {Map<string, sf.BareItem>} params       sf values, in received order
 * @property {string} signatureParams                the "@signature-params" value
 * @property {Uint8Array|undefined} signature
 */

/**
 * Parses the combined Signature-Input and Signature field values. Strict:
 * the RFC 8941 grammar, inner lists of valid component identifiers, typed
 * parameters, a Byte Sequence for each label, and no label or parameter
 * given twice. Throws a SignatureError (malformed-signature) otherwise.
 * @param {string} inputValue
 * @param {string|undefined} signatureValue
 * @returns {ParsedSignatureFields[]}
 */
export function parseSignatureFields(inputValue, signatureValue) {
  let inputs;
  let sigs = new Map();
  try {
    inputs = sf.parseDictionary(inputValue, { rejectDuplicates: true });
  } catch (err) {
    throw malformed(`Signature-Input: ${err.message}`);
  }
  if (signatureValue !== undefined) {
    try {
      sigs = sf.parseDictionary(signatureValue, { rejectDuplicates: true });
    } catch (err) {
      throw malformed(`Signature: ${err.message}`);
    }
  }
  const out = [];
  for (const [label, member] of inputs) {
    if (!Array.isArray(member.value)) throw malformed('Signature-Input member is not an inner list', label);
    const components = [];
    const seen = new Set();
    for (const item of member.value) {
      let comp;
      try {
        comp = componentFromItem(item);
      } catch (err) {
        if (err instanceof SignatureError) throw malformed(err.message.replace(/^signet: [a-z-]+: /, ''), label);
        throw err;
      }
      if (seen.has(comp.canonical)) throw malformed(`duplicate component ${comp.id}`, label);
      seen.add(comp.canonical);
      components.push(comp);
    }
    checkSignatureParams(member.params, label);
    let signature;
    const sig = sigs.get(label);
    if (sig !== undefined) {
      if (!(sig.value instanceof Uint8Array)) throw malformed('Signature member is not a Byte Sequence', label);
      signature = sig.value;
    }
    out.push({
      label,
      components,
      params: member.params,
      signatureParams: serializeSignatureParams(components, member.params),
      signature,
    });
  }
  return out;
}

/**
 * A signature as found in Signature-Input (and Signature).
 * @typedef {object} ParsedSignature
 * @property {string} label
 * @property {string[]} components  serialized component identifiers
 * @property {SignatureParams} params
 * @property {string} signatureParams  the `@signature-params` value
 * @property {Uint8Array | undefined} signature
 */

/**
 * Parses Signature-Input (and optionally Signature) field values into plain
 * objects, for inspection and debugging. Strict: RFC 8941, valid component
 * identifiers, typed parameters, no label or parameter twice; throws a
 * SignatureError (malformed-signature) otherwise.
 * @param {string} signatureInput
 * @param {string} [signature]
 * @returns {ParsedSignature[]}
 */
export function parseSignatures(signatureInput, signature) {
  return parseSignatureFields(signatureInput, signature).map((s) => ({
    label: s.label,
    components: s.components.map((c) => c.id),
    params: plainParams(s.params),
    signatureParams: s.signatureParams,
    signature: s.signature,
  }));
}

/**
 * Signature parameters as a caller gives them.
 * @typedef {Record<string, unknown> | Array<[string, unknown]> | Map<string, unknown>} ParamsInput
 */

/**
 * @param {ParamsInput | null | undefined} params
 * @returns {Array<[string, unknown]>}
 */
function paramPairs(params) {
  if (params == null) return [];
  if (params instanceof Map || Array.isArray(params)) return [...params];
  return Object.entries(params).filter(([, v]) => v !== undefined);
}

/**
 * Serializes signatures into Signature-Input and Signature field values.
 * @param {ReadonlyArray<{ label: string, components: string[], params?: ParamsInput, signature?: Uint8Array }>} entries
 * @returns {{ signatureInput: string, signature: string }}
 */
export function serializeSignatures(entries) {
  const inputs = [];
  const sigs = [];
  for (const e of entries) {
    if (!sf.isKey(e.label)) throw new TypeError(`signet: invalid signature label ${JSON.stringify(e.label)}`);
    const comps = (e.components || []).map(parseComponent);
    inputs.push(`${e.label}=${serializeSignatureParams(comps, paramPairs(e.params))}`);
    if (e.signature) sigs.push(`${e.label}=${sf.serializeBareItem(new Uint8Array(e.signature))}`);
  }
  return { signatureInput: inputs.join(', '), signature: sigs.join(', ') };
}

/**
 * A server's request for a signature (RFC 9421 §5.1).
 * @typedef {object} AcceptSignature
 * @property {string} label
 * @property {string[]} components  serialized component identifiers, ready for SignOptions.components
 * @property {Record<string, unknown>} params  requested parameters: created and expires are true when asked for; nonce, alg, keyid and tag hold the value to use
 */

/**
 * Parses an Accept-Signature field value (RFC 9421 §5.1): what a server
 * asks a client to sign. Each entry lists serialized component identifiers,
 * ready for the components option of sign, and the requested parameters
 * (e.g. { keyid: "…", created: true, tag: "…" }): created and expires are
 * true when asked for; nonce, alg, keyid and tag hold the value to use.
 * Throws a SyntaxError when the value is not a valid Accept-Signature.
 * @param {string} value
 * @returns {AcceptSignature[]}
 */
export function parseAcceptSignature(value) {
  const dict = sf.parseDictionary(value, { rejectDuplicates: true });
  const out = [];
  for (const [label, member] of dict) {
    if (!Array.isArray(member.value)) throw new SyntaxError(`Accept-Signature member ${label} is not an inner list`);
    // RFC 9421 §5.1: created and expires ask the signer to generate them
    // (no value); nonce, alg, keyid and tag carry the value to use.
    for (const [k, v] of member.params) {
      if (INTEGER_PARAMS.has(k) && v !== true) throw new SyntaxError(`Accept-Signature member ${label}: ${k} takes no value`);
      if (STRING_PARAMS.has(k) && typeof v !== 'string') throw new SyntaxError(`Accept-Signature member ${label}: ${k} must be a String`);
    }
    const components = [];
    for (const item of member.value) {
      try {
        components.push(componentFromItem(item).id);
      } catch (err) {
        throw new SyntaxError(`Accept-Signature member ${label}: ${err.message}`);
      }
    }
    out.push({ label, components, params: plainParams(member.params) });
  }
  return out;
}
