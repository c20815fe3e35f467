// The Node.js fast path (node-native.js, installed in lib/native.js) gives
// the results of Web Crypto: the same bytes where the algorithm is
// deterministic, the same verdicts everywhere, over the RFC 9421 vectors
// and over keys of every algorithm, non-extractable ones included; it
// refuses a MAC of the wrong length or with one bit changed, and the
// portable entry point never installs it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ALGORITHMS, contentDigest, generateKeyPair, importKey, jwkThumbprint, sign, verify } from '../index.js';
import { installNative, native } from '../lib/native.js';
import { nodeCrypto } from '../node-native.js';

const dir = fileURLToPath(new URL('../../../testdata/rfc9421/', import.meta.url));
const vectors = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'components.json')
  .map((f) => ({ file: f, ...JSON.parse(readFileSync(dir + f, 'utf8')) }))
  .filter((v) => v.alg);
const latin1 = (s) => new Uint8Array(Buffer.from(s, 'latin1'));
const b64 = (u8) => Buffer.from(u8).toString('base64');

/**
 * Runs fn on Web Crypto alone, then with node:crypto installed; returns
 * both results. The provider stays installed afterwards.
 */
async function both(fn) {
  installNative(undefined);
  try {
    return [await fn('web'), (installNative(nodeCrypto), await fn('node'))];
  } finally {
    installNative(nodeCrypto);
  }
}

/** Counts the provider's calls while fn runs, to prove the fast path ran. */
async function counting(fn) {
  const calls = { sign: 0, verify: 0, digest: 0 };
  installNative({
    algorithms: nodeCrypto.algorithms,
    sign: (...a) => (calls.sign++, nodeCrypto.sign(...a)),
    verify: (...a) => (calls.verify++, nodeCrypto.verify(...a)),
    digest: (...a) => (calls.digest++, nodeCrypto.digest(...a)),
  });
  try {
    await fn();
  } finally {
    installNative(nodeCrypto);
  }
  return calls;
}

test('importing node-native.js installs node:crypto; it covers every algorithm', () => {
  assert.equal(native(), nodeCrypto);
  assert.deepEqual([...nodeCrypto.algorithms].sort(), [...ALGORITHMS].sort());
});

for (const v of vectors) {
  test(`${v.file}: node:crypto and Web Crypto agree (${v.alg})`, async () => {
    const base = latin1(v.signature_base);
    const sig = new Uint8Array(Buffer.from(v.signature_value_b64, 'base64'));
    const flipped = sig.slice();
    flipped[flipped.length >> 1] ^= 1;
    const verifying = await importKey(v.public_key || v.key, v.alg);
    const signing = await importKey(v.key, v.alg);

    const calls = await counting(async () => {
      assert.equal(await verifying.verify(base, sig), true);
      assert.equal(await verifying.verify(base, flipped), false);
    });
    assert.equal(calls.verify, 2, 'the fast path verified');

    const [web, node] = await both(async () => [
      await verifying.verify(base, sig), await verifying.verify(base, flipped), await verifying.verify(base, sig.subarray(1)),
    ]);
    assert.deepEqual(node, web);
    assert.deepEqual(node, [true, false, false]);

    const [webSig, nodeSig] = await both(() => signing.sign(base));
    assert.equal(Object.getPrototypeOf(nodeSig), Uint8Array.prototype, 'a plain Uint8Array, as Web Crypto gives');
    assert.equal(nodeSig.length, webSig.length);
    if (v.deterministic) {
      assert.equal(b64(nodeSig), v.signature_value_b64);
      assert.equal(b64(webSig), v.signature_value_b64);
    } else {
      // Randomized signatures: each side verifies the other's.
      const [webOk, nodeOk] = await both(async (side) => verifying.verify(base, side === 'web' ? nodeSig : webSig));
      assert.equal(webOk, true, 'Web Crypto verifies the node:crypto signature');
      assert.equal(nodeOk, true, 'node:crypto verifies the Web Crypto signature');
    }
  });
}

test('every algorithm, with non-extractable CryptoKeys: the same bytes or each other\'s signatures, the same verdicts', async () => {
  const subtle = globalThis.crypto.subtle;
  const data = new TextEncoder().encode('"@method": POST\n"@signature-params": ("@method");created=1');
  for (const alg of ALGORITHMS) {
    let signing;
    let verifying;
    if (alg === 'hmac-sha256') {
      const ck = await subtle.importKey('raw', new Uint8Array(32).fill(7), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
      assert.equal(ck.extractable, false);
      signing = await importKey(ck);
      verifying = signing;
    } else {
      const pem = await generateKeyPair(alg);
      const params = {
        ed25519: 'Ed25519',
        'ecdsa-p256-sha256': { name: 'ECDSA', namedCurve: 'P-256' },
        'ecdsa-p384-sha384': { name: 'ECDSA', namedCurve: 'P-384' },
        'rsa-pss-sha512': { name: 'RSA-PSS', hash: 'SHA-512' },
        'rsa-v1_5-sha256': { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      }[alg];
      const der = (text) => new Uint8Array(Buffer.from(text.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
      const privateKey = await subtle.importKey('pkcs8', der(pem.privateKey), params, false, ['sign']);
      const publicKey = await subtle.importKey('spki', der(pem.publicKey), params, false, ['verify']);
      assert.equal(privateKey.extractable, false);
      signing = await importKey({ privateKey, publicKey }, alg);
      verifying = await importKey(publicKey, alg);
    }
    const calls = await counting(() => signing.sign(data));
    assert.equal(calls.sign, 1, `${alg}: the fast path signed`);
    const [webSig, nodeSig] = await both(() => signing.sign(data));
    const deterministic = alg === 'hmac-sha256' || alg === 'ed25519' || alg === 'rsa-v1_5-sha256';
    if (deterministic) assert.equal(b64(nodeSig), b64(webSig), `${alg}: byte for byte`);
    for (const sig of [webSig, nodeSig]) {
      const tampered = sig.slice();
      tampered[0] ^= 0x80;
      const [web, node] = await both(async () => [
        await verifying.verify(data, sig),
        await verifying.verify(data, tampered),
        await verifying.verify(data.subarray(1), sig),
        await verifying.verify(data, sig.subarray(0, sig.length - 1)),
        await verifying.verify(data, new Uint8Array([...sig, 0])),
        await verifying.verify(data, new Uint8Array(0)),
      ]);
      assert.deepEqual(node, web, alg);
      assert.deepEqual(node, [true, false, false, false, false, false], alg);
    }
  }
});

test('a MAC of the wrong length or with one bit changed is refused; the right one is accepted', async () => {
  const key = await importKey(new Uint8Array(32).fill(9), 'hmac-sha256');
  const data = new TextEncoder().encode('base');
  const mac = await key.sign(data);
  assert.equal(mac.length, 32);
  // Straight to the provider, with the key's own CryptoKey.
  const cryptoKey = await globalThis.crypto.subtle.importKey('raw', new Uint8Array(32).fill(9), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  assert.equal(nodeCrypto.verify('hmac-sha256', cryptoKey, data, mac), true);
  for (let bit = 0; bit < 256; bit += 37) {
    const changed = mac.slice();
    changed[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(nodeCrypto.verify('hmac-sha256', cryptoKey, data, changed), false, `bit ${bit}`);
    assert.equal(await key.verify(data, changed), false, `bit ${bit} through the Key`);
  }
  for (const len of [0, 1, 16, 31, 33, 64]) {
    const wrong = new Uint8Array(len);
    wrong.set(mac.subarray(0, Math.min(len, 32)));
    assert.equal(nodeCrypto.verify('hmac-sha256', cryptoKey, data, wrong), false, `length ${len}`);
    assert.equal(await key.verify(data, wrong), false, `length ${len} through the Key`);
  }
});

test('a CryptoKey node:crypto cannot take falls back to Web Crypto', async () => {
  // A stand-in for a runtime whose KeyObject.from refuses the key: not a
  // CryptoKey of node:crypto at all.
  const fake = /** @type {CryptoKey} */ (/** @type {unknown} */ ({ type: 'secret' }));
  assert.equal(nodeCrypto.sign('hmac-sha256', fake, new Uint8Array(1)), undefined);
  assert.equal(nodeCrypto.verify('hmac-sha256', fake, new Uint8Array(1), new Uint8Array(32)), undefined);
  // And a Key whose provider declines signs and verifies through Web Crypto.
  const key = await importKey(new Uint8Array(32).fill(5), 'hmac-sha256');
  const data = new TextEncoder().encode('base');
  const expected = await key.sign(data);
  let declined = 0;
  installNative({
    algorithms: nodeCrypto.algorithms,
    sign: () => (declined++, undefined),
    verify: () => (declined++, undefined),
    digest: nodeCrypto.digest,
  });
  try {
    assert.equal(b64(await key.sign(data)), b64(expected));
    assert.equal(await key.verify(data, expected), true);
    assert.equal(await key.verify(data, expected.subarray(1)), false);
  } finally {
    installNative(nodeCrypto);
  }
  assert.equal(declined, 3);
});

test('sign() and verify() of whole messages: the same fields and verdicts either way; digests and thumbprints agree', async () => {
  const secret = new Uint8Array(32).fill(3);
  // The same message is verified several times: a store that takes every nonce.
  const everyNonce = { remember: () => true };
  const ed = await generateKeyPair('ed25519');
  const request = {
    method: 'POST',
    url: 'https://api.example.com/v1/orders?customer=42',
    headers: { 'Content-Type': 'application/json' },
    body: '{"customer":42}',
  };
  for (const [alg, signingMaterial, verifyingMaterial] of [['hmac-sha256', secret, secret], ['ed25519', ed.privateKey, ed.publicKey]]) {
    const key = await importKey(signingMaterial, alg);
    const keys = { k1: await importKey(verifyingMaterial, alg) };
    const opts = { keyId: 'k1', key, created: 1_700_000_000, nonce: 'n-fixed' };
    const [web, node] = await both(() => sign(request, opts));
    assert.deepEqual(node.headers, web.headers, alg);
    const signed = { ...request, headers: { ...request.headers, ...node.headers } };
    const check = () => verify(signed, { keys, now: 1_700_000_000, nonces: everyNonce });
    const [webResult, nodeResult] = await both(check);
    assert.equal(nodeResult.keyId, webResult.keyId);
    assert.equal(nodeResult.base, webResult.base);
    const tampered = { ...signed, body: '{"customer":43}' };
    const [webErr, nodeErr] = await both(async () => verify(tampered, { keys, now: 1_700_000_000, nonces: everyNonce }).then(() => 'accepted', (e) => e.reason));
    assert.equal(nodeErr, webErr);
    assert.equal(nodeErr, 'digest-mismatch');
    const badSig = { ...signed, headers: { ...signed.headers, Signature: signed.headers.Signature.replace(/:(.)/, (m, c) => `:${c === 'A' ? 'B' : 'A'}`) } };
    const [webBad, nodeBad] = await both(async () => verify(badSig, { keys, now: 1_700_000_000, nonces: everyNonce }).then(() => 'accepted', (e) => e.reason));
    assert.equal(nodeBad, webBad);
    assert.equal(nodeBad, 'bad-signature');
  }
  const body = 'x'.repeat(5000);
  for (const alg of ['sha-256', 'sha-512']) {
    const [web, node] = await both(() => contentDigest(body, alg));
    assert.equal(node, web);
  }
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' };
  const [webT, nodeT] = await both(() => jwkThumbprint(jwk));
  assert.equal(nodeT, webT);
  assert.equal(nodeT, 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k'); // RFC 8037 §A.3
});
