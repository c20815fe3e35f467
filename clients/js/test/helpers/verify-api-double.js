// A test double of the verify API of `signet serve` (POST /v1/verify on
// the admin listener), built to the exchange the README describes, for
// the faults the real one cannot be made to show: it authenticates its caller (a key with the
// "verify" scope), checks the described request with its own keys and
// nonce store, and answers a verdict. It records the calls it gets.

import http from 'node:http';
import { MemoryNonceStore, SignatureError, createVerifier } from '../../server.js';
import { toMessage } from '../../lib/message.js';
import { verifyHeader } from '../../lib/verify.js';
import { listen } from './server.js';

const PROBLEM_BASE = 'https://signet.dev/problems/';
const TITLES = { 'bad-signature': 'Bad signature', 'missing-signature': 'Missing signature', replayed: 'Replayed request', 'unknown-key': 'Unknown key' };

/**
 * @param {{ callers: Record<string, any>, keys: Record<string, { key: string, owner: string, scopes: string[] }> }} config
 */
export async function startVerifyApi(config) {
  const calls = [];
  const state = { mode: 'ok' };
  const nonces = new MemoryNonceStore();
  const admin = createVerifier({ keys: config.callers, nonces: new MemoryNonceStore() });
  const server = http.createServer(admin.handler(async (req, res) => {
    const answer = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/verify') return answer(404, { error: 'not found' });
    if (!req.signet.hasScope('verify')) return answer(403, { error: 'needs the verify scope' });
    const call = JSON.parse(req.rawBody.toString('utf8'));
    calls.push(call);
    if (state.mode === 'down') return answer(503, { error: 'key store unavailable' });
    if (state.mode === 'garbage') return answer(200, { verified: true });
    if (state.mode === 'slow') await new Promise((r) => setTimeout(r, 4000));
    const headers = call.headers.filter(([n]) => n.toLowerCase() !== 'host');
    headers.push(['Host', call.authority]);
    const message = toMessage({ method: call.method, url: call.target, scheme: call.scheme, headers });
    let found;
    try {
      const r = await verifyHeader(message, {
        keys: (id) => {
          found = config.keys[id];
          return found;
        },
        nonces,
      }, call.has_content);
      const s = r.signatures[0];
      return answer(200, {
        verified: true, key_id: s.keyId, owner: found.owner, scopes: found.scopes, alg: s.alg, label: s.label,
        created: s.created, expires: s.expires ?? null, covered: r.covered.map((c) => c.id), content_digest: r.contentDigest ?? null,
      });
    } catch (err) {
      if (!(err instanceof SignatureError)) return answer(503, { error: String(err) });
      const status = err.reason === 'insufficient-scope' ? 403 : 401;
      const problem = { type: PROBLEM_BASE + err.reason, title: TITLES[err.reason] || err.reason, status, detail: err.detail };
      if (err.label) problem.signature = err.label;
      return answer(200, {
        verified: false, status, reason: err.reason, key_id: err.keyId, problem,
        accept_signature: 'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");tag="from-the-gateway"',
      });
    }
  }));
  const l = await listen(server);
  return { ...l, calls, state };
}
