#!/usr/bin/env node
// crosscheck: the Node side of the cross-language test. Reads JSON lines on
// stdin and writes one JSON line per input line on stdout, in order.
//
//   {"op":"sign","request":{"method","url","headers":[[name,value],…],"body_b64"},
//    "keyId","alg","key","created","nonce"[, "components","label","expires","tag",
//    "digestAlgorithm"]}
//     → {"headers":[[name,value],…],"base":"…"}        (the fields to add)
//   {"op":"verify","request":{…with the signature fields…},
//    "keys":{"<keyid>":{"alg","key"}},"now":<unix seconds>[, "maxAge","clockSkew",
//    "requiredComponents","requiredParams","algorithms","label","tag"]}
//     → {"ok":true} or {"ok":false,"reason":"…","message":"…"}
//   {"op":"presign","url","keyId","alg","key","expires","created"[, "method","nonce"]}
//     → {"url":"…"}, or {"error":"…"} when the URL cannot be presigned
//   {"op":"verify_response","request":{…as sent…},"response":{"status","headers","body_b64"},
//    "keys":"<the gateway's JWK set>"}
//     → {"ok":true,"tag":"…"} or {"ok":false,"reason":"…","message":"…"}
//
// Keys are base64 HMAC secrets, PEM or JWK text. A line that cannot be
// handled gives {"error":"…"} (sign, presign) or {"ok":false,"reason":"error",…}
// (verify, verify_response).

import { createInterface } from 'node:readline';
import { MemoryNonceStore, SignatureError, parseJwks, presign, sign, verifiedResponse, verify } from '../index.js';
import { verifyResponse } from '../node.js';

// JSON strings are Unicode; HTTP field values are octets. Go sends its
// bytes as UTF-8, so a value's octets are its UTF-8 encoding.
const toOctets = (s) => Buffer.from(String(s), 'utf8').toString('latin1');
const fromOctets = (s) => Buffer.from(s, 'latin1').toString('utf8');

function toRequest(r) {
  if (!r || typeof r !== 'object') throw new TypeError('request must be an object');
  const headers = (r.headers || []).map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('headers must be [name, value] pairs');
    return [pair[0], toOctets(pair[1])];
  });
  let body = null;
  if (typeof r.body_b64 === 'string' && r.body_b64 !== '') body = Buffer.from(r.body_b64, 'base64');
  return { method: r.method, url: r.url, headers, body };
}

function pick(obj, names) {
  const out = {};
  for (const n of names) if (obj[n] !== undefined) out[n] = obj[n];
  return out;
}

async function handle(input) {
  switch (input.op) {
    case 'sign': {
      const out = await sign(toRequest(input.request), {
        keyId: input.keyId,
        key: input.key,
        alg: input.alg,
        ...pick(input, ['created', 'nonce', 'components', 'label', 'expires', 'tag', 'digestAlgorithm']),
      });
      return { headers: Object.entries(out.headers), base: fromOctets(out.base) };
    }
    case 'verify': {
      try {
        // A store per line: each line is one request received once.
        const clock = typeof input.now === 'number' ? () => input.now * 1000 : Date.now;
        await verify(toRequest(input.request), {
          keys: input.keys || {},
          nonces: new MemoryNonceStore({ now: clock }),
          now: input.now,
          ...pick(input, ['maxAge', 'clockSkew', 'requiredComponents', 'requiredParams', 'algorithms', 'label', 'tag']),
        });
        return { ok: true };
      } catch (err) {
        if (err instanceof SignatureError) return { ok: false, reason: err.reason, message: err.message };
        return { ok: false, reason: 'error', message: String(err && err.message) };
      }
    }
    case 'presign': {
      const url = await presign(input.url, {
        keyId: input.keyId, key: input.key, alg: input.alg, method: input.method, expiresIn: input.expires,
        created: input.created, singleUse: input.nonce !== undefined, nonce: input.nonce,
      });
      return { url };
    }
    case 'verify_response': {
      try {
        const r = input.response;
        const body = r.body_b64 ? Buffer.from(r.body_b64, 'base64') : null;
        const headers = r.headers.map(([n, v]) => [n, toOctets(v)]);
        const res = new Response([101, 204, 304].includes(r.status) ? null : body, { status: r.status, headers });
        const checked = await verifyResponse(res, { request: toRequest(input.request), keys: await parseJwks(input.keys) });
        await checked.arrayBuffer();
        return { ok: true, tag: verifiedResponse(checked).tag };
      } catch (err) {
        if (err instanceof SignatureError) return { ok: false, reason: err.reason, message: err.message };
        return { ok: false, reason: 'error', message: String(err && err.message) };
      }
    }
    default:
      throw new TypeError(`unknown op ${JSON.stringify(input.op)}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  let out;
  let op;
  try {
    const input = JSON.parse(line);
    op = input && input.op;
    out = await handle(input);
  } catch (err) {
    const message = String(err && err.message);
    out = op === 'verify' || op === 'verify_response' ? { ok: false, reason: 'error', message } : { error: message };
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
