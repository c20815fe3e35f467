// Keys on Web Crypto: every encoding, RSASSA-PSS restrictions, CryptoKeys,
// and the Node.js entry point's key files, KeyObjects and streamed digests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey, generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { contentDigest, importKey, generateKeyPair, sign, verify } from '../index.js';
import * as node from '../node.js';

const data = new TextEncoder().encode('"@method": GET');
const pem = (ko, type) => ko.export({ type, format: 'pem' });

async function roundTrip(priv, pub, alg) {
  const s = await importKey(priv, alg);
  const v = await importKey(pub, alg);
  assert.equal(s.alg, alg);
  const sig = await s.sign(data);
  assert.ok(await v.verify(data, sig), `${alg}: the public key verifies`);
  assert.ok(await s.verify(data, sig), `${alg}: the private key verifies too`);
  assert.ok(!(await v.verify(new TextEncoder().encode('other'), sig)));
  return s;
}

test('PKCS#8, SPKI, PKCS#1 and SEC1 PEM, made by OpenSSL through node:crypto', async () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await roundTrip(pem(ec.privateKey, 'pkcs8'), pem(ec.publicKey, 'spki'), 'ecdsa-p256-sha256');
  await roundTrip(pem(ec.privateKey, 'sec1'), pem(ec.publicKey, 'spki'), 'ecdsa-p256-sha256');
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  await roundTrip(pem(ec384.privateKey, 'sec1'), pem(ec384.publicKey, 'spki'), 'ecdsa-p384-sha384');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1280 });
  await roundTrip(pem(rsa.privateKey, 'pkcs1'), pem(rsa.publicKey, 'pkcs1'), 'rsa-v1_5-sha256');
  await roundTrip(pem(rsa.privateKey, 'pkcs1'), pem(rsa.publicKey, 'spki'), 'rsa-pss-sha512');
  const ed = generateKeyPairSync('ed25519');
  await roundTrip(pem(ed.privateKey, 'pkcs8'), pem(ed.publicKey, 'spki'), 'ed25519');
  await roundTrip(ed.privateKey.export({ format: 'jwk' }), JSON.stringify(ed.publicKey.export({ format: 'jwk' })), 'ed25519');
});

test('RSASSA-PSS keys: unrestricted or restricted to rsa-pss-sha512 only', async () => {
  const free = generateKeyPairSync('rsa-pss', { modulusLength: 1280 });
  const k = await roundTrip(pem(free.privateKey, 'pkcs8'), pem(free.publicKey, 'spki'), 'rsa-pss-sha512');
  assert.equal((await importKey(pem(free.publicKey, 'spki'))).alg, 'rsa-pss-sha512', 'inferred');
  assert.equal(k.type, 'private');
  await assert.rejects(importKey(pem(free.publicKey, 'spki'), 'rsa-v1_5-sha256'), /cannot be used with rsa-v1_5-sha256/);

  // Smaller moduli keep the test fast; rsa-pss-sha512 needs 1040 bits at least.
  const ok = generateKeyPairSync('rsa-pss', { modulusLength: 1280, hashAlgorithm: 'sha512', mgf1HashAlgorithm: 'sha512', saltLength: 64 });
  await roundTrip(pem(ok.privateKey, 'pkcs8'), pem(ok.publicKey, 'spki'), 'rsa-pss-sha512');
  const shorter = generateKeyPairSync('rsa-pss', { modulusLength: 1280, hashAlgorithm: 'sha512', mgf1HashAlgorithm: 'sha512', saltLength: 32 });
  await roundTrip(pem(shorter.privateKey, 'pkcs8'), pem(shorter.publicKey, 'spki'), 'rsa-pss-sha512');
  for (const restricted of [
    { hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha256', saltLength: 32 },
    { hashAlgorithm: 'sha512', mgf1HashAlgorithm: 'sha256', saltLength: 64 },
    { hashAlgorithm: 'sha512', mgf1HashAlgorithm: 'sha512', saltLength: 65 },
  ]) {
    const p = generateKeyPairSync('rsa-pss', { modulusLength: 1024, ...restricted });
    await assert.rejects(importKey(pem(p.publicKey, 'spki')), /restricted/, JSON.stringify(restricted));
    await assert.rejects(importKey(pem(p.privateKey, 'pkcs8')), /restricted/, JSON.stringify(restricted));
  }
});

test('keys that do not fit are refused when imported', async () => {
  const x25519 = generateKeyPairSync('x25519');
  await assert.rejects(importKey(pem(x25519.publicKey, 'spki')), /unsupported key type/);
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  await assert.rejects(importKey(pem(k1.publicKey, 'spki')), /P-256 and P-384/);
  await assert.rejects(importKey('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'), /unsupported PEM type/);
  await assert.rejects(importKey('-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----'), /DER|pkcs8/);
  await assert.rejects(importKey('-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----'), /malformed PEM/);
  await assert.rejects(importKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----'), /malformed PEM/);
  const encrypted = pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'sec1');
  const withHeaders = encrypted.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n');
  await assert.rejects(importKey(withHeaders), /encrypted/);
  await assert.rejects(importKey(''), /base64/);
  await assert.rejects(importKey(new Uint8Array(0)), /empty/);
  await assert.rejects(importKey({ kty: 'OKP', crv: 'X25519', x: 'AA' }), /unsupported JWK/);
  await assert.rejects(importKey(42), /a key must be/);
});

test('Web Crypto keys: a CryptoKeyPair, a public key, a secret; their parameters fix the algorithm', async () => {
  const s = globalThis.crypto.subtle;
  const pair = await s.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']);
  const k = await importKey(pair);
  assert.equal(k.alg, 'ecdsa-p384-sha384');
  const sig = await k.sign(data);
  assert.ok(await k.verify(data, sig));
  assert.ok(await (await importKey(pair.publicKey)).verify(data, sig));
  const alone = await importKey(pair.privateKey);
  assert.ok(alone.canSign);
  await assert.rejects(alone.verify(data, sig), /cannot verify/);
  await assert.rejects(importKey(pair, 'ecdsa-p256-sha256'), /for ecdsa-p384-sha384/);
  const rsa = await s.generateKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, false, ['sign', 'verify']);
  assert.equal((await importKey(rsa)).alg, 'rsa-v1_5-sha256');
  await assert.rejects(importKey(rsa, 'rsa-pss-sha512'), /for rsa-v1_5-sha256/);
  const sha1 = await s.generateKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, false, ['sign']);
  await assert.rejects(importKey(sha1), /does not fit/);
  const hmac = await s.importKey('raw', new Uint8Array(32).fill(7), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  const a = await importKey(hmac);
  const b = await importKey(new Uint8Array(32).fill(7));
  assert.ok(await b.verify(data, await a.sign(data)), 'the same secret, imported two ways');
});

test('generateKeyPair writes PEM that both entry points read', async () => {
  for (const alg of ['ed25519', 'ecdsa-p256-sha256', 'ecdsa-p384-sha384', 'rsa-pss-sha512', 'rsa-v1_5-sha256']) {
    const { privateKey, publicKey } = await generateKeyPair(alg);
    assert.match(privateKey, /^-----BEGIN PRIVATE KEY-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END PRIVATE KEY-----\n$/);
    assert.match(publicKey, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(createPrivateKey(privateKey).asymmetricKeyType, alg === 'ed25519' ? 'ed25519' : alg.startsWith('ecdsa') ? 'ec' : 'rsa');
    await roundTrip(privateKey, publicKey, alg);
  }
  await assert.rejects(generateKeyPair('hmac-sha256'), /cannot generate/);
});

test('@signet/client/node: KeyObjects, key files (bounded), streamed digests', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-js-keys-'));
  try {
    const secret = new Uint8Array(32).fill(9);
    const fromObject = await node.importKey(createSecretKey(secret));
    assert.ok(await (await importKey(secret)).verify(data, await fromObject.sign(data)));
    const ed = generateKeyPairSync('ed25519');
    const priv = await node.importKey(ed.privateKey);
    assert.ok(await (await node.importKey(ed.publicKey)).verify(data, await priv.sign(data)));

    writeFileSync(join(dir, 'client.key'), `${Buffer.from(secret).toString('base64')}\n`);
    writeFileSync(join(dir, 'client.pem'), pem(ed.privateKey, 'pkcs8'));
    writeFileSync(join(dir, 'big.key'), 'A'.repeat((64 << 10) + 1));
    writeFileSync(join(dir, 'edge.key'), `${'A'.repeat((64 << 10) - 1)}=`);
    const fromFile = await node.readKeyFile(join(dir, 'client.key'));
    assert.equal(fromFile.alg, 'hmac-sha256');
    assert.ok(await fromFile.verify(data, await fromObject.sign(data)));
    assert.equal((await node.readKeyFile(join(dir, 'client.pem'))).alg, 'ed25519');
    await assert.rejects(node.readKeyFile(join(dir, 'big.key')), /larger than a key file/);
    assert.equal((await node.readKeyFile(join(dir, 'edge.key'))).alg, 'hmac-sha256', 'exactly 64 KiB is a key file');
    await assert.rejects(node.readKeyFile(join(dir, 'missing.key')), { code: 'ENOENT' });

    // The node entry point exports the whole API.
    const signed = await node.sign({ method: 'GET', url: 'https://a.example/' }, { keyId: 'k', key: fromFile, created: 1 });
    assert.ok(signed.headers.Signature);
    assert.equal(node.verify, verify);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const chunks = () => Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]);
  for (const alg of ['sha-256', 'sha-512']) {
    assert.equal(await node.contentDigest(chunks(), alg), await contentDigest('{"a":1}', alg));
    assert.equal(await node.contentDigest(new Blob(['{"a":1}']), alg), await contentDigest(chunks(), alg));
  }
  assert.equal(await node.contentDigest(null), await contentDigest(''));
  await assert.rejects(node.contentDigest('x', 'md5'), /unsupported digest/);
  await assert.rejects(node.contentDigest(12), /unsupported body/);
});

test('hosts with non-ASCII characters: IDNA, and nothing the URL parser would cut', async () => {
  const key = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0';
  const at = (host) => sign({ method: 'GET', url: '/x', headers: [['Host', host]] }, { keyId: 'k', key, created: 1, nonce: 'n' }).then((o) => o.base.split('\n')[1]);
  assert.equal(await at('Bücher.example:8443'), '"@authority": xn--bcher-kva.example:8443');
  assert.equal(await at('bücher.example:443'), '"@authority": xn--bcher-kva.example');
  // Before, "é/evil" was signed and verified as the authority "xn--9ca".
  for (const bad of ['é/evil', 'é?x', 'é#x', 'é\\x', 'é x', 'é%2f']) {
    await assert.rejects(at(bad), /invalid host/, bad);
  }
});
