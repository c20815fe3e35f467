// The browser side of TestBrowser (internal/interop/browser_test.go): the
// package imported as an ES module, as it is, with Web Crypto. run(config)
// checks it here in the page, against the Go verifier, and through a real
// Signet gateway on the same origin, and resolves to a report:
// { results: [{ name, ok, detail }], bench: { … ops/s } }.

import {
  MemoryNonceStore, SignatureError, createSignedFetch, generateKeyPair, generateSecret, importKey, readProblem,
  sign, verify,
} from '../../index.js';
import { parseHttpMessage } from '../helpers/http.js';

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

function equal(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function refusedWith(promise, reason) {
  try {
    await promise;
  } catch (err) {
    if (err instanceof SignatureError && err.reason === reason) return;
    throw new Error(`expected a refusal with ${reason}, got ${err}`);
  }
  throw new Error(`expected a refusal with ${reason}, got none`);
}

const reference = () => ({
  method: 'POST',
  url: `${location.origin}/v1/orders?customer=42&expand=items`,
  headers: [['Content-Type', 'application/json']],
  body: JSON.stringify({ customer: 42, items: [{ sku: 'A-1', qty: 2 }] }),
});

const withSignature = (req, out) => ({ ...req, headers: [...req.headers, ...Object.entries(out.headers)] });
const storeAt = (seconds) => new MemoryNonceStore({ now: () => seconds * 1000 });

async function spkiPem(publicKey) {
  const der = new Uint8Array(await crypto.subtle.exportKey('spki', publicKey));
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN PUBLIC KEY-----\n${b64.replace(/.{64}/g, '$&\n')}\n-----END PUBLIC KEY-----\n`;
}

const json = (v) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) });

export async function run(config) {
  const results = [];
  const check = async (name, fn) => {
    try {
      results.push({ name, ok: true, detail: (await fn()) || '' });
    } catch (err) {
      results.push({ name, ok: false, detail: String((err && err.stack) || err) });
    }
  };

  await check('a browser: Web Crypto in a secure context, no Node.js', () => {
    expect(typeof Buffer === 'undefined' && typeof process === 'undefined', 'no Node.js globals');
    expect(isSecureContext && crypto.subtle, 'Web Crypto');
    return navigator.userAgent;
  });

  await check('RFC 9421 B.2.5 (hmac-sha256) and B.2.6 (ed25519) byte for byte', async () => {
    for (const file of ['b2.5-hmac-sha256.json', 'b2.6-ed25519.json']) {
      const v = await (await fetch(`/testdata/rfc9421/${file}`)).json();
      const out = await sign(parseHttpMessage(v.message), {
        keyId: v.key_id, key: v.key, alg: v.alg, label: v.label, components: v.covered_components,
        created: v.params.created, nonce: false, includeAlg: false,
      });
      equal(out.base, v.signature_base, `${file} base`);
      equal(out.headers['Signature-Input'], v.signature_input, `${file} Signature-Input`);
      equal(out.headers.Signature, v.signature, `${file} Signature`);
      const result = await verify(parseHttpMessage(v.message.replace('\n\n', `\nSignature-Input: ${v.signature_input}\nSignature: ${v.signature}\n\n`)), {
        keys: { [v.key_id]: { alg: v.alg, key: v.public_key || v.key } }, now: v.params.created, maxAge: null,
        requiredParams: [], requiredComponents: [], nonces: false,
      });
      equal(result.base, v.signature_base, `${file} verified base`);
    }
  });

  await check('every algorithm, with keys made in this page', async () => {
    const now = Math.floor(Date.now() / 1000);
    const made = [];
    for (const alg of ['ed25519', 'ecdsa-p256-sha256', 'ecdsa-p384-sha384', 'rsa-pss-sha512', 'rsa-v1_5-sha256']) {
      const { privateKey, publicKey } = await generateKeyPair(alg);
      const out = await sign(reference(), { keyId: 'k', key: privateKey, alg, created: now });
      const r = await verify(withSignature(reference(), out), { keys: { k: { alg, key: publicKey } }, now, nonces: storeAt(now) });
      equal(r.alg, alg, 'alg');
      made.push(alg);
    }
    const secret = generateSecret();
    const out = await sign(reference(), { keyId: 'k', key: secret, created: now });
    await verify(withSignature(reference(), out), { keys: { k: { key: secret } }, now, nonces: storeAt(now) });
    return made.concat('hmac-sha256').join(', ');
  });

  await check('a Web Crypto key pair, its private half not extractable, signs a WHATWG Request', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const key = await importKey(pair);
    const req = new Request(`${location.origin}/v1/items?id=7`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    const out = await sign(req, { keyId: 'web', key });
    const signed = new Request(req, { headers: { 'content-type': 'text/plain', ...out.headers } });
    const r = await verify(signed, { keys: { web: await importKey(pair.publicKey) }, nonces: new MemoryNonceStore() });
    equal(r.components.join(' '), '"@method" "@authority" "@path" "@query" "content-type" "content-digest"', 'components');
    equal(await signed.text(), 'hello', 'the body is still there');
  });

  await check('refusals in the page: tampering, replays, no nonce store', async () => {
    const now = Math.floor(Date.now() / 1000);
    const secret = generateSecret();
    const keys = { k: { key: secret } };
    const out = await sign(reference(), { keyId: 'k', key: secret, created: now });
    const good = withSignature(reference(), out);
    await refusedWith(verify({ ...good, body: '{"customer":43}' }, { keys, now, nonces: storeAt(now) }), 'digest-mismatch');
    await refusedWith(verify({ ...good, method: 'PATCH' }, { keys, now, nonces: storeAt(now) }), 'bad-signature');
    await refusedWith(verify(good, { keys, now: now + 301, nonces: storeAt(now + 301) }), 'expired');
    const nonces = storeAt(now);
    await verify(good, { keys, now, nonces });
    await refusedWith(verify(good, { keys, now, nonces }), 'replayed');
    let threw = false;
    try {
      await verify(good, { keys, now });
    } catch (err) {
      threw = err instanceof TypeError;
    }
    expect(threw, 'a TypeError without a nonce store');
  });

  await check('the Go verifier accepts what this browser sent, with the same signature base', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const reg = await fetch('/go/keys', json({ keyId: 'browser-ed25519', alg: 'ed25519', publicKey: await spkiPem(pair.publicKey) }));
    equal(reg.status, 204, 'registering the key');
    const checked = [];
    for (const [keyId, key] of [[config.go.keyId, config.go.secret], ['browser-ed25519', pair]]) {
      const body = JSON.stringify({ note: 'café ✓', n: 1 });
      const req = new Request(`${location.origin}/go/verify?from=browser&alg=${keyId}`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body });
      const out = await sign(req, { keyId, key });
      const res = await fetch(req.url, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', ...out.headers }, body });
      const got = await res.json();
      equal(got.ok, true, `${keyId}: verified by Go (${got.reason}: ${got.detail})`);
      equal(got.base, out.base, `${keyId}: Go's signature base`);
      checked.push(keyId);
    }
    return checked.join(', ');
  });

  await check('through the gateway: a key made here, registered with the admin API, used, revoked', async () => {
    const admin = createSignedFetch({ keyId: config.admin.keyId, key: config.admin.secret });
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const created = await admin('/v1/keys', json({ owner: 'browser', alg: 'ed25519', public_key: await spkiPem(pair.publicKey), scopes: ['orders:write'], label: 'made in Chromium' }));
    equal(created.status, 201, `creating the key: ${await created.clone().text()}`);
    const { key } = await created.json();
    const client = createSignedFetch({ keyId: key.id, key: pair });
    const order = JSON.stringify({ sku: 'B-1', qty: 2 });
    const res = await client(`/v1/orders?customer=42`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: order });
    equal(res.status, 200, `the order: ${await res.clone().text()}`);
    const seen = await res.json();
    const header = (name) => (seen.header.find(([n]) => n === name) || [])[1];
    equal(header('X-Signet-Key-Id'), key.id, 'the identity the upstream got');
    equal(header('X-Signet-Owner'), 'browser', 'the owner');
    equal(atob(seen.body), order, 'the body the upstream got');
    const revoked = await admin(`/v1/keys/${key.id}/revoke`, { method: 'POST' });
    equal(revoked.status, 200, `revoking: ${await revoked.clone().text()}`);
    const after = await client('/v1/orders/7');
    equal(after.status, 401, 'a revoked key');
    equal((await readProblem(after)).reason, 'key-revoked', 'the reason');
    return key.id;
  });

  await check('through the gateway: an HMAC key, refusals, and a slow clock corrected', async () => {
    const client = createSignedFetch({ keyId: config.client.keyId, key: config.client.secret });
    const res = await client('/v1/orders?customer=42&expand=items', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"qty":1}' });
    equal(res.status, 200, `signed: ${await res.clone().text()}`);

    const unsigned = await fetch('/v1/orders');
    equal(unsigned.status, 401, 'unsigned');
    equal((await readProblem(unsigned)).reason, 'missing-signature', 'unsigned reason');
    expect(unsigned.headers.get('accept-signature'), 'Accept-Signature');
    expect(/^Signature/.test(unsigned.headers.get('www-authenticate')), 'WWW-Authenticate: Signature');

    const url = `${location.origin}/v1/orders`;
    const out = await sign({ method: 'POST', url, headers: [['content-type', 'application/json']], body: '{"qty":2}' }, { keyId: config.client.keyId, key: config.client.secret });
    const send = () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...out.headers }, body: '{"qty":2}' });
    equal((await send()).status, 200, 'first');
    const again = await send();
    equal((await readProblem(again)).reason, 'replayed', 'a replay');

    const slow = createSignedFetch({ keyId: config.client.keyId, key: config.client.secret, clock: () => Date.now() - 600_000 });
    equal((await slow('/v1/orders/8')).status, 200, 'after the correction');
    expect(Math.abs(slow.clockOffset(location.origin) - 600) <= 2, `an offset of about 600 s, not ${slow.clockOffset(location.origin)}`);
  });

  const bench = {};
  if (config.benchMs > 0) {
    const measure = async (fn) => {
      for (let i = 0; i < 50; i++) await fn();
      let n = 0;
      const start = performance.now();
      while (performance.now() - start < config.benchMs) {
        for (let i = 0; i < 20; i++) await fn();
        n += 20;
      }
      return Math.round((n * 1000) / (performance.now() - start));
    };
    const nonces = { remember: () => true };
    const ed = await generateKeyPair('ed25519');
    for (const [alg, s, v] of [['hmac-sha256', generateSecret(), null], ['ed25519', ed.privateKey, ed.publicKey]]) {
      const key = await importKey(s, alg);
      const keys = new Map([['k', v ? await importKey(v, alg) : key]]);
      const out = await sign(reference(), { keyId: 'k', key });
      const msg = withSignature(reference(), out);
      bench[`sign ${alg}`] = await measure(() => sign(reference(), { keyId: 'k', key }));
      bench[`verify ${alg}`] = await measure(() => verify(msg, { keys, nonces }));
    }
  }
  return { results, bench };
}
