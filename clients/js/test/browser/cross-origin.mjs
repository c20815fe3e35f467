// The browser side of TestBrowserCrossOrigin (internal/interop): a page
// on one origin signs fetches to a real `signet serve` on another, whose
// CORS allow-list has the page's origin. The key is an Ed25519 key made
// here with Web Crypto; its public key is registered, and later revoked,
// through the page's own server, which relays to the gateway's admin API
// (admin keys do not belong in browsers, and the admin listener serves no
// CORS). The gateway signs its responses (--gateway-keys): the signed
// fetch is given the JWK set the gateway publishes on the same listener,
// requires every response to verify, and the page checks which key and
// tag signed them, its refusals of unsigned fetches included (config.keyId
// is the key the gateway signs with). Resolves to
// { results: [{ name, ok, detail }] }.

import {
  createSignedFetch, importKey, readProblem, verifyResponse, verifiedResponse, GatewayKeys, KEYS_PATH, RESPONSE_TAG, GATEWAY_TAG,
} from '../../index.js';

function equal(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function spkiPem(publicKey) {
  const der = new Uint8Array(await crypto.subtle.exportKey('spki', publicKey));
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN PUBLIC KEY-----\n${b64.replace(/.{64}/g, '$&\n')}\n-----END PUBLIC KEY-----\n`;
}

async function relay(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function run(config) {
  const results = [];
  const check = async (name, fn) => {
    try {
      results.push({ name, ok: true, detail: (await fn()) || '' });
    } catch (err) {
      results.push({ name, ok: false, detail: String((err && err.stack) || err) });
    }
  };
  const gateway = config.gateway;
  const gatewayKeys = new GatewayKeys(`${gateway}${KEYS_PATH}`);
  let signed;
  let keyId;

  await check('the page and the gateway are different origins', () => {
    if (new URL(gateway).origin === location.origin) throw new Error('same origin');
    return `${location.origin} → ${new URL(gateway).origin}`;
  });

  await check('an Ed25519 key made with Web Crypto, registered through the relay', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const made = await relay('/relay/register', { public_key: await spkiPem(pair.publicKey) });
    keyId = made.key_id;
    signed = createSignedFetch({ keyId, key: await importKey(pair), gatewayKeys, requireSignedResponses: true });
    return keyId;
  });

  await check('a signed cross-origin POST passes the preflight and the gateway', async () => {
    const body = JSON.stringify({ customer: 42, items: [{ sku: 'A-1', qty: 2 }] });
    const res = await signed(`${gateway}/v1/orders?customer=42&expand=items`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k-1' }, body,
    });
    const text = await res.text();
    equal(res.status, 200, `status (${text})`);
    const seen = JSON.parse(text);
    equal(seen.key_id, keyId, 'the identity the upstream got');
    equal(seen.body, body, 'the body the upstream got');
    if (!res.headers.get('x-request-id')) throw new Error('X-Request-Id is not exposed to the page');
    return `X-Request-Id ${res.headers.get('x-request-id')}`;
  });

  await check('a signed GET passes, its response verified: the gateway\'s key, relayed', async () => {
    const res = await signed(`${gateway}/v1/orders/7`);
    equal(res.status, 200, 'status');
    await res.text(); // the content is checked as it is read
    const v = verifiedResponse(res);
    if (!v) throw new Error('the response did not verify');
    equal(v.keyId, config.keyId, 'the key that signed the response');
    equal(v.tag, RESPONSE_TAG, 'tag');
    return `keyid ${v.keyId}, ${v.tag}`;
  });

  await check('the gateway asks a compressing upstream for the content as it is, which the page verifies', async () => {
    const res = await signed(`${gateway}/v1/gz`);
    equal(res.status, 200, 'status');
    const body = await res.text();
    equal(body, '{"compressed":false}', 'body');
    if (!verifiedResponse(res)) throw new Error('the response did not verify');
    return body;
  });

  await check('a response compressed anyway is refused as content-coded, not taken for a changed one', async () => {
    try {
      await signed(`${gateway}/v1/gz-always`);
    } catch (err) {
      equal(err.reason, 'digest-mismatch', 'reason');
      if (!/gzip-encoded/.test(err.message)) throw new Error(`the refusal does not say the content is coded: ${err.message}`);
      return err.message;
    }
    throw new Error('a gzip response passed');
  });

  await check('a response changed on the way does not verify', async () => {
    const url = `${gateway}/v1/orders/8`;
    const got = await fetch(url);
    const body = (await got.text()).replace('missing-signature', 'expired');
    const changed = new Response(body, { status: got.status, headers: got.headers });
    const res = await verifyResponse(changed, { request: { method: 'GET', url, headers: {} }, keys: gatewayKeys });
    // Read from the stream itself: Response.text() would turn its error
    // into a TypeError.
    const reader = res.body.getReader();
    try {
      while (!(await reader.read()).done);
    } catch (err) {
      equal(err.reason, 'digest-mismatch', `reason (${err})`);
      return `refused as read: ${err.reason}`;
    }
    throw new Error('a changed body verified');
  });

  await check('an unsigned fetch is refused, readable by the page, the refusal signed by the gateway', async () => {
    const url = `${gateway}/v1/orders/7`;
    const unchecked = await fetch(url);
    const res = await verifyResponse(unchecked, { request: { method: 'GET', url, headers: {} }, keys: gatewayKeys });
    equal(verifiedResponse(res).tag, GATEWAY_TAG, 'tag');
    equal(res.status, 401, 'status');
    const p = await readProblem(res);
    equal(p.reason, 'missing-signature', 'reason');
    if (!/^sig1=\("@method"/.test(res.headers.get('accept-signature') || '')) throw new Error(`Accept-Signature not exposed: ${res.headers.get('accept-signature')}`);
    if (!res.headers.get('date')) throw new Error('Date not readable');
  });

  await check('revoked through the relay, the next fetch is refused: key-revoked', async () => {
    await relay('/relay/revoke', { key_id: keyId });
    const res = await signed(`${gateway}/v1/orders/7`);
    equal(res.status, 401, 'status');
    equal((await readProblem(res)).reason, 'key-revoked', 'reason');
    equal(verifiedResponse(res).tag, GATEWAY_TAG, 'tag of the refusal');
  });

  return { results };
}
