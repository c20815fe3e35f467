// The RFC 9421 conformance vectors of testdata/rfc9421: every signature base
// rebuilt byte for byte from its message, every signature verified, the
// deterministic ones re-created byte for byte.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { importKey, sign, signatureBase, verify, sf } from '../index.js';
import { parseHttpMessage } from './helpers/http.js';

const dir = fileURLToPath(new URL('../../../testdata/rfc9421/', import.meta.url));
const load = (name) => JSON.parse(readFileSync(dir + name, 'utf8'));
// Keys sign and verify bytes in an ArrayBuffer of their own, as Web Crypto wants.
const bytes = (b) => new Uint8Array(b);
const latin1 = (s) => bytes(Buffer.from(s, 'latin1'));

const KNOWN_FIELDS = new Set([
  'name', 'section', 'source', 'message_name', 'message', 'request_message', 'signed_message',
  'client_message', 'client_signed_message', 'label', 'covered_components', 'signature_params', 'params',
  'key_id', 'alg', 'alg_param_present', 'key', 'key_encoding', 'public_key', 'key_files', 'signature_base',
  'signature_input', 'signature', 'signature_value_b64', 'deterministic', 'notes', 'variants', 'signatures',
]);

const vectorFiles = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'components.json').sort();

// A policy that checks the signature only: the vectors are old, carry no
// nonce and cover what the RFC chose; requiring no nonce, it needs no
// nonce store either.
const lenient = (created) => ({ now: created, maxAge: null, requiredParams: [], requiredComponents: [], nonces: false });

function baseOptions(v) {
  return v.request_message ? { request: parseHttpMessage(v.request_message) } : {};
}

function verifyingKey(v) {
  return importKey(v.public_key || v.key, v.alg);
}

test('the vector directory holds the expected files', () => {
  assert.ok(vectorFiles.length >= 11, `found ${vectorFiles.length} vector files`);
});

for (const file of vectorFiles) {
  const v = load(file);

  test(`${file}: only known fields`, () => {
    for (const k of Object.keys(v)) assert.ok(KNOWN_FIELDS.has(k), `unknown vector field ${k}`);
  });

  if (v.signatures) continue; // the multiple-signatures case, below

  const message = parseHttpMessage(v.message || v.signed_message);

  test(`${file}: signature base byte for byte`, () => {
    const base = signatureBase(message, v.signature_input, baseOptions(v));
    assert.equal(base, v.signature_base);
    // The parsed @signature-params line re-serializes to what was received.
    assert.equal(base.slice(base.lastIndexOf('\n') + 1), `"@signature-params": ${v.signature_params}`);
  });

  test(`${file}: signature verifies (${v.alg})`, async () => {
    const key = await verifyingKey(v);
    const sig = bytes(Buffer.from(v.signature_value_b64, 'base64'));
    assert.ok(await key.verify(latin1(v.signature_base), sig));
    const flipped = sig.slice();
    flipped[flipped.length >> 1] ^= 1;
    assert.ok(!(await key.verify(latin1(v.signature_base), flipped)), 'a changed signature must not verify');
  });

  if (v.deterministic) {
    test(`${file}: signature re-created byte for byte (${v.alg})`, async () => {
      const key = await importKey(v.key, v.alg);
      assert.equal(Buffer.from(await key.sign(latin1(v.signature_base))).toString('base64'), v.signature_value_b64);
    });
  }

  if (v.signed_message || file.startsWith('b4-')) {
    test(`${file}: verify() accepts the signed message`, async () => {
      const signed = parseHttpMessage(v.signed_message || v.message);
      const result = await verify(signed, {
        ...lenient(v.params.created),
        ...baseOptions(v),
        keys: { [v.key_id]: verifyingKey(v) },
      });
      assert.equal(result.label, v.label);
      assert.equal(result.base, v.signature_base);
    });
  }
}

test('B.2.5 and B.2.6 through sign(): fields byte for byte', async () => {
  for (const file of ['b2.5-hmac-sha256.json', 'b2.6-ed25519.json']) {
    const v = load(file);
    const out = await sign(parseHttpMessage(v.message), {
      keyId: v.key_id,
      key: v.key,
      alg: v.alg,
      label: v.label,
      components: v.covered_components,
      created: v.params.created,
      nonce: false,
      includeAlg: false,
    });
    assert.equal(out.base, v.signature_base, file);
    assert.equal(out.headers['Signature-Input'], v.signature_input, file);
    assert.equal(out.headers.Signature, v.signature, file);
    // The body gets a fresh Content-Digest (sha-256 by default), covered or not.
    assert.equal(out.headers['Content-Digest'], 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', file);
  }
});

test('B.1 keys load from every given encoding', async () => {
  const keys = load('keys/index.json');
  const algs = {
    'test-key-rsa': 'rsa-v1_5-sha256',
    'test-key-rsa-pss': 'rsa-pss-sha512',
    'test-key-ecc-p256': 'ecdsa-p256-sha256',
    'test-key-ed25519': 'ed25519',
    'test-shared-secret': 'hmac-sha256',
  };
  const data = latin1('signet');
  for (const [id, k] of Object.entries(keys)) {
    const alg = algs[id];
    if (alg === 'hmac-sha256') {
      const fromFile = await importKey(readFileSync(`${dir}keys/test-shared-secret.b64`, 'utf8'));
      assert.equal(fromFile.alg, 'hmac-sha256');
      assert.ok(await (await importKey(k.base64, alg)).verify(data, await fromFile.sign(data)));
      continue;
    }
    const priv = await importKey(k.private_pem, alg);
    const sig = await priv.sign(data);
    assert.ok(await (await importKey(k.public_pem, alg)).verify(data, sig), `${id} public PEM`);
    assert.ok(await (await importKey(k.jwk, alg)).verify(data, sig), `${id} JWK`);
    assert.ok(await (await importKey(JSON.stringify(k.jwk), alg)).verify(data, await priv.sign(data)), `${id} JWK text`);
    assert.ok(await priv.verify(data, sig), `${id} the private key verifies too`);
    assert.ok((await importKey(readFileSync(dir + k.files.private_pem, 'utf8'), alg)).canSign, `${id} private file`);
  }
});

test('B.4 variants: expected validity', async () => {
  const v = load('b4-transformations.json');
  const key = await importKey(v.public_key, v.alg);
  assert.ok(v.variants.length >= 5);
  for (const variant of v.variants) {
    const run = verify(parseHttpMessage(variant.message), { ...lenient(v.params.created), keys: { [v.key_id]: key } });
    if (variant.expect_valid) {
      await assert.doesNotReject(run, variant.description);
    } else {
      await assert.rejects(run, (err) => err.reason === 'bad-signature', variant.description);
    }
  }
});

test('4.3 multiple signatures: both bases, both signatures, and verify() of both', async () => {
  const v = load('s4.3-multiple-signatures.json');
  const [client, proxy] = v.signatures;

  const clientMsg = parseHttpMessage(v.client_signed_message);
  const clientBase = signatureBase(clientMsg, v.signature_input, { label: 'sig1' });
  assert.equal(clientBase, client.signature_base_derived);
  const clientKey = await importKey(client.public_key, client.alg);
  assert.ok(await clientKey.verify(latin1(clientBase), bytes(Buffer.from(client.signature_value_b64, 'base64'))));

  // The figure has two blank lines before the body; the body is the same
  // 18 bytes as in the client's message.
  const signed = parseHttpMessage(v.signed_message.replace('\n\n\n', '\n\n'));
  assert.equal(signatureBase(signed, v.signature_input, { label: 'proxy_sig' }), proxy.signature_base);
  const proxyKey = await importKey(proxy.key, proxy.alg);
  assert.equal(Buffer.from(await proxyKey.sign(latin1(proxy.signature_base))).toString('base64'), proxy.signature_value_b64);

  const keys = {
    'test-key-ecc-p256': clientKey,
    'test-key-rsa': await importKey(proxy.public_key, proxy.alg),
  };
  const policy = { ...lenient(proxy.params.created), keys };
  const result = await verify(signed, { ...policy, label: 'proxy_sig' });
  assert.equal(result.alg, 'rsa-v1_5-sha256');
  assert.equal(result.expires, 1618884540);
  // The client's signature does not survive the proxy's change of Host, so
  // checking every signature must fail, however good proxy_sig is.
  await assert.rejects(verify(signed, policy), (err) => err.reason === 'bad-signature' && err.label === 'sig1');
  await assert.rejects(verify(signed, { ...policy, label: 'sig1' }), { reason: 'bad-signature' });
  await assert.doesNotReject(verify(clientMsg, { ...lenient(1618884475), keys }));
});

// components.json: each expected base line rebuilt from its message.
const components = load('components.json');

function splitLine(line) {
  // The identifier is the sf Item before the first ": " that parses as one.
  for (let i = line.indexOf(': '); i >= 0; i = line.indexOf(': ', i + 1)) {
    try {
      sf.parseItem(line.slice(0, i));
      return [line.slice(0, i), line.slice(i + 2)];
    } catch {
      // keep looking
    }
  }
  throw new Error(`no identifier in ${line}`);
}

for (const [i, c] of components.cases.entries()) {
  test(`components.json #${i} §${c.section}: ${c.title}`, () => {
    if (c.section === '2.3') {
      const parsed = sf.parseDictionary(`sig=${c.expected}`);
      assert.equal(sf.serializeItem(parsed.get('sig')), c.expected);
      assert.equal(signatureBase({ method: 'GET', url: 'https://example.com/' }, { components: [], params: [['keyid', 'k']] }),
        '"@signature-params": ();keyid="k"');
      return;
    }
    const scheme = /plain HTTP/.test(c.context || '') ? 'http' : 'https';
    const message = c.message === null
      ? { method: 'GET', url: 'https://www.example.com/path' }
      : parseHttpMessage(c.message.includes('HTTP/1.1') ? c.message : `GET https://www.example.com/ HTTP/1.1\n${c.message}`, { scheme });
    for (const line of c.expected.split('\n')) {
      const [id] = splitLine(line);
      // Example-Dict is no registered structured field: its type is declared.
      const base = signatureBase(message, `(${id})`, { structuredFields: { 'example-dict': 'dictionary' } });
      assert.equal(base.split('\n')[0], line);
    }
  });
}
