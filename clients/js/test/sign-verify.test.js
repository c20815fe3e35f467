// sign and verify: the default profile, tampering, several signatures,
// policy checks, component edge cases, and malformed input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  Key, MemoryNonceStore, SignatureError, generateKeyPair, generateNonce, generateSecret, importKey, parseAcceptSignature,
  parseSignatures, serializeSignatures, sign, signatureBase, verify as verifyWith,
} from '../index.js';

// Most tests look at one verification at a time: each gets a nonce store of
// its own, on the verifier's clock. The replay tests pass theirs.
const clockOf = (now) => () => (now === undefined ? Date.now() : now instanceof Date ? now.getTime() : now * 1000);
const verify = (message, options = {}) => verifyWith(message, { nonces: new MemoryNonceStore({ now: clockOf(options.now) }), ...options });

const NOW = 1_700_000_000;
const SECRET = 'uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==';
const ED = await generateKeyPair('ed25519');

const reference = () => ({
  method: 'POST',
  url: 'https://api.example.com/v1/orders?customer=42&expand=items',
  headers: [['Content-Type', 'application/json']],
  body: JSON.stringify({ customer: 42, items: [{ sku: 'A-1', qty: 2 }] }),
});

const KEYS = {
  hmac: { keyId: 'sk_test_abc', key: SECRET, alg: 'hmac-sha256', verifying: { alg: 'hmac-sha256', key: SECRET } },
  ed25519: { keyId: 'pk_test_ed', key: ED.privateKey, alg: 'ed25519', verifying: { alg: 'ed25519', key: ED.publicKey } },
};

const keysFor = (k) => ({ [k.keyId]: k.verifying });

// Appends the signing output to a plain request.
function withHeaders(req, headers) {
  return { ...req, headers: [...req.headers.filter(([n]) => !(n.toLowerCase() in lowerKeys(headers))), ...Object.entries(headers)] };
}
function lowerKeys(o) {
  return Object.fromEntries(Object.keys(o).map((k) => [k.toLowerCase(), true]));
}

async function signed(req = reference(), k = KEYS.hmac, extra = {}) {
  const out = await sign(req, { keyId: k.keyId, key: k.key, alg: k.alg, created: NOW, ...extra });
  return { req: withHeaders(req, out.headers), out };
}

const rejectsWith = (promise, reason, label) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof SignatureError, `not a SignatureError: ${err}`);
    assert.equal(err.reason, reason, err.message);
    if (label !== undefined) assert.equal(err.label, label);
    return true;
  });

test('default profile: the Signature-Input of DESIGN.md, byte for byte', async () => {
  const { out } = await signed(reference(), KEYS.hmac, { nonce: 'q3v0b0m5c2g3d2x1ZmZ4cA' });
  assert.equal(out.headers['Signature-Input'],
    'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="sk_test_abc";alg="hmac-sha256";nonce="q3v0b0m5c2g3d2x1ZmZ4cA"');
  assert.deepEqual(Object.keys(out.headers), ['Content-Digest', 'Signature-Input', 'Signature']);
  assert.match(out.headers['Content-Digest'], /^sha-256=:[A-Za-z0-9+/]{43}=:$/);
  assert.equal(out.base, [
    '"@method": POST',
    '"@authority": api.example.com',
    '"@path": /v1/orders',
    '"@query": ?customer=42&expand=items',
    '"content-type": application/json',
    `"content-digest": ${out.headers['Content-Digest']}`,
    '"@signature-params": ("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="sk_test_abc";alg="hmac-sha256";nonce="q3v0b0m5c2g3d2x1ZmZ4cA"',
  ].join('\n'));
  assert.equal(out.label, 'sig1');
});

test('default profile: components present only when they apply; parameter order', async () => {
  const k = { keyId: 'k', key: SECRET, created: NOW, nonce: 'n' };
  const covered = async (req, extra = {}) => parseSignatures((await sign(req, { ...k, ...extra })).headers['Signature-Input'])[0];
  let s = await covered({ method: 'GET', url: 'https://api.example.com/v1/orders' });
  assert.deepEqual(s.components, ['"@method"', '"@authority"', '"@path"']);
  s = await covered({ method: 'GET', url: 'https://api.example.com/v1/orders?' });
  assert.deepEqual(s.components, ['"@method"', '"@authority"', '"@path"'], 'a lone "?" is an empty query');
  s = await covered({ method: 'POST', url: 'https://api.example.com/x', headers: { 'content-type': 'text/plain' }, body: '' });
  assert.deepEqual(s.components, ['"@method"', '"@authority"', '"@path"', '"content-type"'], 'empty body: no content-digest');
  s = await covered({ method: 'PUT', url: 'https://api.example.com/x', body: new Uint8Array([1]) });
  assert.deepEqual(s.components, ['"@method"', '"@authority"', '"@path"', '"content-digest"']);
  s = await covered({ method: 'GET', url: 'https://api.example.com/x' }, { expires: NOW + 60, tag: 'app' });
  assert.equal(s.signatureParams, '("@method" "@authority" "@path");created=1700000000;keyid="k";alg="hmac-sha256";nonce="n";expires=1700000060;tag="app"');
  s = await covered({ method: 'GET', url: 'https://api.example.com/x' }, { expiresIn: 30 });
  assert.equal(s.params.expires, NOW + 30);
});

test('fresh nonces: 16 random bytes, base64url without padding', async () => {
  const seen = new Set();
  for (let i = 0; i < 100; i++) {
    const n = generateNonce();
    assert.match(n, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(Buffer.from(n, 'base64url').length, 16);
    seen.add(n);
  }
  assert.equal(seen.size, 100);
  const a = await sign({ method: 'GET', url: 'https://a.example/' }, { keyId: 'k', key: SECRET });
  const b = await sign({ method: 'GET', url: 'https://a.example/' }, { keyId: 'k', key: SECRET });
  assert.notEqual(parseSignatures(a.headers['Signature-Input'])[0].params.nonce, parseSignatures(b.headers['Signature-Input'])[0].params.nonce);
});

test('derived components: @method case, @authority normalization, raw @path and @query', () => {
  const base = (req, comps) => signatureBase(req, { components: comps, params: {} }).split('\n').slice(0, -1);
  assert.deepEqual(base({ method: 'patch', url: 'HTTPS://API.Example.COM:443/a%2Fb%7e/%C3%A9?x=%41+b&y' },
    ['@method', '@authority', '@scheme', '@path', '@query', '@target-uri', '@request-target']), [
    '"@method": patch',
    '"@authority": api.example.com',
    '"@scheme": https',
    '"@path": /a%2Fb%7e/%C3%A9',
    '"@query": ?x=%41+b&y',
    '"@target-uri": https://api.example.com/a%2Fb%7e/%C3%A9?x=%41+b&y',
    '"@request-target": /a%2Fb%7e/%C3%A9?x=%41+b&y',
  ]);
  assert.deepEqual(base({ method: 'GET', url: 'http://Example.com:80' }, ['@authority', '@path', '@query']),
    ['"@authority": example.com', '"@path": /', '"@query": ?']);
  assert.deepEqual(base({ method: 'GET', url: 'http://example.com:8443/#frag' }, ['@authority', '@target-uri']),
    ['"@authority": example.com:8443', '"@target-uri": http://example.com:8443/']);
  assert.deepEqual(base({ method: 'GET', url: 'https://user:pw@[::1]:443/p' }, ['@authority']), ['"@authority": [::1]']);
  assert.deepEqual(base({ method: 'GET', url: 'https://bücher.example/ä b' }, ['@authority', '@path']),
    ['"@authority": xn--bcher-kva.example', '"@path": /%C3%A4%20b'], 'non-ASCII: the form fetch would send');
  assert.deepEqual(base({ method: 'GET', url: '/p?q', headers: { host: 'Origin.Example:443' } }, ['@authority', '@scheme']),
    ['"@authority": origin.example', '"@scheme": https']);
  assert.deepEqual(base({ method: 'GET', url: '/p', scheme: 'http', headers: { host: 'origin.example:80' } }, ['@authority', '@target-uri']),
    ['"@authority": origin.example', '"@target-uri": http://origin.example/p']);
  assert.throws(() => base({ method: 'GET', url: 'relative/path' }, ['@path']), TypeError);
  assert.throws(() => base({ method: 'GET', url: 'https://exa mple.com/' }, ['@path']), TypeError);
});

test('field components: repeated lines, trimming, obs-fold, sf, key, bs', () => {
  const req = {
    method: 'GET',
    url: 'https://example.com/',
    headers: [
      ['Accept', ' application/json '],
      ['X-Fold', 'one\r\n  two'],
      ['accept', '*/*'],
      ['Example-Dict', ' a=1,    b=2;x=1;y=2,   c=(a   b   c), d'],
      ['Priority', 'u=1,   i'],
    ],
  };
  const lines = signatureBase(req, {
    components: ['accept', 'x-fold', '"example-dict";sf', '"example-dict";key="b"', '"example-dict";key="d"', '"priority";sf', '"accept";bs'],
  }, { structuredFields: { 'example-dict': 'dictionary' } }).split('\n');
  assert.deepEqual(lines.slice(0, -1), [
    '"accept": application/json, */*',
    '"x-fold": one two',
    '"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c), d',
    '"example-dict";key="b": 2;x=1;y=2',
    '"example-dict";key="d": ?1',
    '"priority";sf: u=1, i',
    `"accept";bs: :${Buffer.from('application/json').toString('base64')}:, :${Buffer.from('*/*').toString('base64')}:`,
  ]);
  const missing = (comp, extra = {}) => assert.throws(() => signatureBase({ ...req, ...extra }, { components: [comp] }), { reason: 'missing-component' });
  missing('x-absent');
  missing('"example-dict";key="zz"');
  missing('"accept";tr');
  const malformed = (comp, opts) => assert.throws(() => signatureBase(req, { components: [comp] }, opts), { reason: 'malformed-signature' });
  malformed('"example-dict";sf'); // type unknown
  malformed('"x-fold";sf', { structuredFields: { 'x-fold': 'item' } }); // not a valid Item
  malformed('"priority";key="u"', { structuredFields: { priority: 'list' } }); // key needs a Dictionary
  malformed('"accept";sf', { structuredFields: { accept: 'dictionary' } });
  assert.throws(() => signatureBase({ ...req, headers: [['X-Bad', 'a\nb']] }, { components: ['x-bad'] }), { reason: 'malformed-signature' });
});

test('@query-param: WHATWG parsing, percent-encode after encoding, one line per value', () => {
  const lines = (url, names) => signatureBase({ method: 'GET', url }, {
    components: names.map((n) => `"@query-param";name="${n}"`),
  }).split('\n').slice(0, -1);
  assert.deepEqual(lines('https://e.example/p?a=1&b=x&a=2&a=', ['a', 'b']), [
    '"@query-param";name="a": 1',
    '"@query-param";name="a": 2',
    '"@query-param";name="a": ',
    '"@query-param";name="b": x',
  ]);
  assert.deepEqual(lines("https://e.example/p?v=a+b%20c~d*e-f.g_h!'()&n=%7E%7e&bad=%zz%4&utf=%FF&flag&e%CC%81=1", ['v', 'n', 'bad', 'utf', 'flag', 'e%CC%81']), [
    '"@query-param";name="v": a%20b%20c%7Ed*e-f.g_h%21%27%28%29',
    '"@query-param";name="n": %7E%7E',
    '"@query-param";name="bad": %25zz%254',
    '"@query-param";name="utf": %EF%BF%BD',
    '"@query-param";name="flag": ',
    '"@query-param";name="e%CC%81": 1',
  ]);
  assert.deepEqual(lines('https://e.example/p?a%5Bb%5D=1&a+b=2&%61=3', ['a%5Bb%5D', 'a%20b', 'a']), [
    '"@query-param";name="a%5Bb%5D": 1',
    '"@query-param";name="a%20b": 2',
    '"@query-param";name="a": 3',
  ]);
  assert.deepEqual(lines('https://e.example/p?;=x;&&=empty', ['%3B', '']), [
    '"@query-param";name="%3B": x%3B',
    '"@query-param";name="": empty',
  ]);
  assert.throws(() => lines('https://e.example/p?a=1', ['A']), { reason: 'missing-component' });
  assert.throws(() => lines('https://e.example/p', ['a']), { reason: 'missing-component' });
  assert.throws(() => lines('https://e.example/p?a%5B=1', ['a[']), { reason: 'missing-component' }, 'the name must be given encoded');
});

test('@query-param signatures round-trip through verify', async () => {
  const req = { method: 'GET', url: 'https://e.example/search?q=caf%C3%A9+au+lait&tag=a&tag=b', headers: [] };
  const { req: s } = await signed(req, KEYS.ed25519, { components: ['@method', '@path', '"@query-param";name="q"', '"@query-param";name="tag"'] });
  const policy = { keys: keysFor(KEYS.ed25519), now: NOW, requiredComponents: ['"@query-param";name="q"'] };
  const result = await verify(s, policy);
  assert.match(result.base, /"@query-param";name="q": caf%C3%A9%20au%20lait\n"@query-param";name="tag": a\n"@query-param";name="tag": b\n/);
  await rejectsWith(verify({ ...s, url: 'https://e.example/search?q=caf%C3%A9+au+lait&tag=b&tag=a' }, policy), 'bad-signature');
  // Parameter order across names and "+" versus "%20" do not change the values.
  await verify({ ...s, url: 'https://e.example/search?tag=a&tag=b&q=caf%C3%A9%20au%20lait' }, policy);
});

for (const name of Object.keys(KEYS)) {
  const k = KEYS[name];
  const policy = { keys: keysFor(k), now: NOW + 5 };

  test(`${name}: a default-profile request verifies in every request shape`, async () => {
    const { req, out } = await signed(reference(), k);
    const result = await verify(req, policy);
    assert.equal(result.keyId, k.keyId);
    assert.equal(result.alg, k.alg);
    assert.equal(result.base, out.base);
    assert.equal(result.signatures.length, 1);
    assert.equal(Buffer.from(result.body).toString(), reference().body);

    const asObject = { ...req, headers: Object.fromEntries(req.headers) };
    await verify(asObject, policy);
    await verify({ ...req, headers: new Headers(req.headers) }, policy);
    const whatwg = new Request(req.url, { method: req.method, headers: req.headers, body: req.body });
    await verify(whatwg, policy);
    assert.equal(await whatwg.text(), reference().body, 'verify leaves a Request readable');
  });

  test(`${name}: WHATWG Request input signs the same as a plain object`, async () => {
    const r = reference();
    const a = await sign(r, { keyId: k.keyId, key: k.key, created: NOW, nonce: 'n' });
    const b = await sign(new Request(r.url, { method: r.method, headers: r.headers, body: r.body }), { keyId: k.keyId, key: k.key, created: NOW, nonce: 'n' });
    assert.equal(b.base, a.base);
    assert.deepEqual(b.headers, a.headers);
  });

  test(`${name}: tampering with any covered part is refused with the right reason`, async () => {
    const { req } = await signed(reference(), k);
    const set = (n, v) => ({ ...req, headers: [...req.headers.filter(([h]) => h.toLowerCase() !== n), ...(v === undefined ? [] : [[n, v]])] });
    const cases = [
      ['method', { ...req, method: 'PUT' }, 'bad-signature'],
      ['method case', { ...req, method: 'post' }, 'bad-signature'],
      ['authority', { ...req, url: req.url.replace('api.example.com', 'api.example.org') }, 'bad-signature'],
      ['port', { ...req, url: req.url.replace('api.example.com', 'api.example.com:8443') }, 'bad-signature'],
      ['path', { ...req, url: req.url.replace('/v1/orders', '/v1/orderz') }, 'bad-signature'],
      ['query', { ...req, url: req.url.replace('customer=42', 'customer=43') }, 'bad-signature'],
      ['query removed', { ...req, url: req.url.replace(/\?.*/, '') }, 'bad-signature'],
      ['content-type', set('content-type', 'text/plain'), 'bad-signature'],
      ['content-type removed', set('content-type', undefined), 'missing-component'],
      ['body', { ...req, body: req.body.replace('42', '43') }, 'digest-mismatch'],
      ['body removed', { ...req, body: null }, 'digest-mismatch'],
      ['content-digest', set('content-digest', `sha-256=:${Buffer.alloc(32).toString('base64')}:`), 'bad-signature'],
      ['content-digest removed', set('content-digest', undefined), 'missing-component'],
      ['signature', set('signature', `sig1=:${Buffer.alloc(k.alg === 'ed25519' ? 64 : 32).toString('base64')}:`), 'bad-signature'],
      ['created', set('signature-input', req.headers.find(([n]) => n === 'Signature-Input')[1].replace(`created=${NOW}`, `created=${NOW + 1}`)), 'bad-signature'],
    ];
    for (const [what, msg, reason] of cases) {
      await rejectsWith(verify(msg, policy), reason, undefined).catch((err) => {
        throw new Error(`${what}: ${err.message}`);
      });
    }
  });
}

test('with several signatures, a bad one is refused whatever the good ones say', async () => {
  const k = KEYS.ed25519;
  const req = reference();
  const good = await sign(req, { keyId: k.keyId, key: k.key, created: NOW });
  const other = await generateKeyPair('ed25519');
  // sig2 claims the same keyid but is made with another key.
  const bad = await sign(withHeaders(req, good.headers), { keyId: k.keyId, key: other.privateKey, created: NOW, label: 'sig2' });
  const both = withHeaders(req, bad.headers);
  assert.equal(parseSignatures(bad.headers['Signature-Input']).length, 2);
  const policy = { keys: keysFor(k), now: NOW };
  await rejectsWith(verify(both, policy), 'bad-signature', 'sig2');

  // The same with the bad one first.
  const badFirst = await sign(req, { keyId: k.keyId, key: other.privateKey, created: NOW, label: 'bad' });
  const goodSecond = await sign(withHeaders(req, badFirst.headers), { keyId: k.keyId, key: k.key, created: NOW, label: 'good' });
  await rejectsWith(verify(withHeaders(req, goodSecond.headers), policy), 'bad-signature', 'bad');

  // A verifier may choose which signature it checks; that one must be good.
  assert.equal((await verify(both, { ...policy, label: 'sig1' })).label, 'sig1');
  await rejectsWith(verify(both, { ...policy, label: 'sig2' }), 'bad-signature', 'sig2');
  await rejectsWith(verify(both, { ...policy, label: 'sig3' }), 'missing-signature');

  // Two good signatures both verify.
  const second = await sign(withHeaders(req, good.headers), { keyId: k.keyId, key: k.key, created: NOW, label: 'again', tag: 'x' });
  const twoGood = withHeaders(req, second.headers);
  const result = await verify(twoGood, policy);
  assert.deepEqual(result.signatures.map((s) => s.label), ['sig1', 'again']);
  assert.equal((await verify(twoGood, { ...policy, tag: 'x' })).signatures.length, 1);
  await rejectsWith(verify(twoGood, { ...policy, tag: 'nope' }), 'missing-signature');
});

test('a key is bound to one algorithm', async () => {
  const { req } = await signed(reference(), KEYS.hmac);
  // The verifier holds an Ed25519 key under the keyid the HMAC signature names.
  await rejectsWith(verify(req, { keys: { sk_test_abc: { alg: 'ed25519', key: ED.publicKey } }, now: NOW }), 'algorithm-mismatch');
  // Same secret, registered for another algorithm name.
  const noAlg = await signed(reference(), KEYS.hmac, { includeAlg: false });
  await verify(noAlg.req, { keys: keysFor(KEYS.hmac), now: NOW });
  await rejectsWith(verify(noAlg.req, { keys: { sk_test_abc: { alg: 'ed25519', key: ED.publicKey } }, now: NOW }), 'bad-signature');
  // An alg parameter naming an algorithm nobody supports.
  const forged = withHeaders(req, { 'Signature-Input': req.headers.find(([n]) => n === 'Signature-Input')[1].replace('hmac-sha256', 'none') });
  await rejectsWith(verify(forged, { keys: keysFor(KEYS.hmac), now: NOW }), 'algorithm-mismatch');
  await assert.rejects(importKey(ED.privateKey, 'hmac-sha256'), TypeError);
  await assert.rejects(importKey(SECRET, 'ed25519'), TypeError);
  await assert.rejects(importKey((await generateKeyPair('ecdsa-p384-sha384')).publicKey, 'ecdsa-p256-sha256'), /curve/);
  const rsa = await generateKeyPair('rsa-v1_5-sha256');
  await assert.rejects(importKey(rsa.privateKey), /pass alg/);
  await assert.rejects(importKey(await importKey(SECRET), 'ed25519'), /bound to hmac-sha256/);
  const rsaJwk = (await import('node:crypto')).createPublicKey(rsa.publicKey).export({ format: 'jwk' });
  assert.equal((await importKey({ ...rsaJwk, alg: 'PS512' })).alg, 'rsa-pss-sha512', 'a JWK alg names the algorithm');
  assert.equal((await importKey({ ...rsaJwk, alg: 'rsa-v1_5-sha256' })).alg, 'rsa-v1_5-sha256');
  await assert.rejects(importKey({ ...rsaJwk, alg: 'RS256' }, 'rsa-pss-sha512'), /JWK names rsa-v1_5-sha256/);
  await assert.rejects(importKey({ ...rsaJwk, alg: 'RS512' }), /not supported/);
  assert.equal((await importKey({ kty: 'oct', k: Buffer.alloc(32, 1).toString('base64url'), alg: 'HS256' })).alg, 'hmac-sha256');
  await assert.rejects(sign(reference(), { keyId: 'k', key: ED.publicKey }), /public key/);
});

test('every algorithm signs and verifies through sign() and verify()', async () => {
  for (const alg of ['ed25519', 'ecdsa-p256-sha256', 'ecdsa-p384-sha384', 'rsa-pss-sha512', 'rsa-v1_5-sha256']) {
    const pair = await generateKeyPair(alg);
    const { req } = await signed(reference(), { keyId: 'k', key: pair.privateKey, alg });
    const result = await verify(req, { keys: { k: { alg, key: pair.publicKey } }, now: NOW });
    assert.equal(result.alg, alg);
    const jwk = await importKey(JSON.parse(JSON.stringify(await import('node:crypto').then((c) => c.createPublicKey(pair.publicKey).export({ format: 'jwk' })))), alg);
    await verify(req, { keys: { k: jwk }, now: NOW });
  }
  const secret = generateSecret();
  assert.equal(Buffer.from(secret, 'base64').length, 32);
  const { req } = await signed(reference(), { keyId: 'k', key: Buffer.from(secret, 'base64') });
  await verify(req, { keys: { k: await importKey(secret) }, now: NOW });
});

test('keys: lookup by callback or Map, unknown keys, resolver errors', async () => {
  const { req } = await signed(reference(), KEYS.hmac);
  const seen = [];
  await verify(req, {
    now: NOW,
    keys: (keyId, info) => {
      seen.push([keyId, info.alg, info.label]);
      return importKey(SECRET, 'hmac-sha256');
    },
  });
  assert.deepEqual(seen, [['sk_test_abc', 'hmac-sha256', 'sig1']]);
  await verify(req, { now: NOW, keys: new Map([['sk_test_abc', importKey(SECRET)]]) });
  await rejectsWith(verify(req, { now: NOW, keys: {} }), 'unknown-key');
  await rejectsWith(verify(req, { now: NOW, keys: async () => null }), 'unknown-key');
  await rejectsWith(verify(req, { now: NOW, keys: { toString: { alg: 'hmac-sha256', key: SECRET } } }), 'unknown-key');
  await rejectsWith(verify(req, { now: NOW, keys: () => { throw new SignatureError('key-revoked', 'revoked'); } }), 'key-revoked');
  // Any other resolver failure is passed through: the caller fails closed.
  await assert.rejects(verify(req, { now: NOW, keys: async () => { throw new Error('database down'); } }), /database down/);
});

test('time: max age, future skew, expires', async () => {
  const { req } = await signed(reference(), KEYS.hmac, { expires: NOW + 600 });
  const policy = { keys: keysFor(KEYS.hmac) };
  await verify(req, { ...policy, now: NOW + 300 });
  await rejectsWith(verify(req, { ...policy, now: NOW + 301 }), 'expired');
  await verify(req, { ...policy, now: NOW + 1000, maxAge: null, clockSkew: 0 }).then(
    () => assert.fail('expires must still apply'),
    (err) => assert.equal(err.reason, 'expired'),
  );
  await verify(req, { ...policy, now: NOW + 500, maxAge: 3600 });
  await verify(req, { ...policy, now: NOW - 30 });
  await rejectsWith(verify(req, { ...policy, now: NOW - 31 }), 'not-yet-valid');
  await rejectsWith(verify(req, { ...policy, now: NOW - 5, clockSkew: 0 }), 'not-yet-valid');
  await verify(req, { ...policy, now: new Date((NOW + 10) * 1000) });
  await rejectsWith(verify(req, { ...policy, now: NOW + 600, maxAge: null }), 'expired', 'sig1');
  await verify(req, { ...policy, now: NOW + 599, maxAge: null });
});

test('parameters: created, keyid and nonce required by default; replays refused through the nonce store', async () => {
  const policy = { keys: keysFor(KEYS.hmac), now: NOW };
  const noNonce = await signed(reference(), KEYS.hmac, { nonce: false });
  await rejectsWith(verify(noNonce.req, policy), 'malformed-signature');
  await verify(noNonce.req, { ...policy, requiredParams: ['created', 'keyid'] });
  const noCreated = await signed(reference(), KEYS.hmac, { created: false });
  await rejectsWith(verify(noCreated.req, policy), 'malformed-signature');
  const emptyNonce = await signed(reference(), KEYS.hmac, { nonce: '' });
  await rejectsWith(verify(emptyNonce.req, policy), 'malformed-signature');
  const withExpires = await signed(reference(), KEYS.hmac, { expires: NOW + 60 });
  await rejectsWith(verify(withExpires.req, { ...policy, requiredParams: ['expires', 'tag'] }), 'malformed-signature');
  await rejectsWith(verify(withExpires.req, { ...policy, algorithms: ['ed25519'] }), 'algorithm-mismatch');
  await verify(withExpires.req, { ...policy, algorithms: ['hmac-sha256'] });

  const { req } = await signed(reference(), KEYS.hmac);
  const nonces = new MemoryNonceStore({ now: clockOf(NOW) });
  await verify(req, { ...policy, nonces });
  await rejectsWith(verify(req, { ...policy, nonces }), 'replayed', 'sig1');
  const bad = withHeaders(req, { Signature: 'sig1=:AAAA:' });
  const burning = { remember: () => assert.fail('a bad signature must not burn a nonce') };
  await rejectsWith(verify(bad, { ...policy, nonces: burning }), 'bad-signature');
});

test('replay protection is required unless the policy drops the nonce', async () => {
  const { req } = await signed(reference(), KEYS.hmac);
  const keys = keysFor(KEYS.hmac);
  await assert.rejects(verifyWith(req, { keys, now: NOW }), /needs a nonce store/);
  await assert.rejects(verifyWith(req, { keys, now: NOW, nonces: null }), /needs a nonce store/);
  await assert.rejects(verifyWith(req, { keys, now: NOW, nonces: false }), /does not require a nonce/);
  await assert.rejects(verifyWith(req, { keys, now: NOW, nonces: {} }), /remember/);
  await assert.rejects(verifyWith(reference(), { keys, now: NOW }), TypeError, 'checked before the message');
  const noNonce = { keys, now: NOW, requiredParams: ['created', 'keyid'], nonces: false };
  const r = await verifyWith(req, noNonce);
  assert.equal(r.keyId, 'sk_test_abc');
  await verifyWith(req, noNonce);
});

test('a nonce is remembered as long as its signature can pass the freshness check', async () => {
  const calls = [];
  const recording = { remember: (...args) => { calls.push(args); return true; } };
  const at = (now, extra) => verifyWith(req, { keys: keysFor(KEYS.hmac), now, nonces: recording, ...extra });
  let { req } = await signed(reference(), KEYS.hmac, { nonce: 'n1' });
  await at(NOW);
  // The age check compares whole seconds: created + 300.999 s still passes,
  // so the nonce is held through created + 301 s.
  await at(NOW + 300.999);
  await rejectsWith(at(NOW + 301), 'expired');
  await at(NOW, { maxAge: 60 });
  await at(NOW + 5, { maxAge: null });
  assert.deepEqual(calls.map(([keyId, nonce, created, until]) => [keyId, nonce, created.getTime() / 1000, until.getTime() / 1000]), [
    ['sk_test_abc', 'n1', NOW, NOW + 301],
    ['sk_test_abc', 'n1', NOW, NOW + 301],
    ['sk_test_abc', 'n1', NOW, NOW + 61],
    ['sk_test_abc', 'n1', NOW, NOW + 5 + 24 * 3600],
  ]);

  // expires passes while now < expires: the nonce is held through expires,
  // when that comes first.
  calls.length = 0;
  ({ req } = await signed(reference(), KEYS.hmac, { nonce: 'n2', expires: NOW + 10 }));
  await at(NOW + 9.999);
  await rejectsWith(at(NOW + 10), 'expired');
  ({ req } = await signed(reference(), KEYS.hmac, { nonce: 'n3', expires: NOW + 1000 }));
  await at(NOW);
  assert.deepEqual(calls.map(([, nonce, , until]) => [nonce, until.getTime() / 1000]), [['n2', NOW + 10], ['n3', NOW + 301]]);
});

test('a replay in the last second of the window is refused', async () => {
  // The clock of the verifier and of the store, in step.
  const { req } = await signed(reference(), KEYS.hmac, { nonce: 'edge' });
  let clock = NOW * 1000;
  const nonces = new MemoryNonceStore({ now: () => clock });
  await verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW, nonces });
  clock = (NOW + 300.5) * 1000;
  await rejectsWith(verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW + 300.5, nonces }), 'replayed');
  clock = (NOW + 300.999) * 1000;
  await rejectsWith(verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW + 300.999, nonces }), 'replayed');
  clock = (NOW + 301) * 1000;
  await rejectsWith(verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW + 301, nonces }), 'expired');
});

test('a nonce store that cannot answer fails the verification closed', async () => {
  const { req } = await signed(reference(), KEYS.hmac);
  const down = { remember: async () => { throw new Error('redis: connection refused'); } };
  await assert.rejects(verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW, nonces: down }), (err) => {
    assert.ok(!(err instanceof SignatureError), 'not a refusal of the message');
    assert.match(err.message, /connection refused/);
    return true;
  });
  const vague = { remember: () => undefined };
  await rejectsWith(verifyWith(req, { keys: keysFor(KEYS.hmac), now: NOW, nonces: vague }), 'replayed');
});

test('required components: the policy decides', async () => {
  const get = { method: 'GET', url: 'https://api.example.com/v1/orders?x=1', headers: [] };
  const narrow = await signed(get, KEYS.hmac, { components: ['@method', '@path'] });
  await rejectsWith(verify(narrow.req, { keys: keysFor(KEYS.hmac), now: NOW }), 'missing-component');
  await verify(narrow.req, { keys: keysFor(KEYS.hmac), now: NOW, requiredComponents: ['@method', '@path'] });
  await rejectsWith(verify(narrow.req, { keys: keysFor(KEYS.hmac), now: NOW, requiredComponents: () => ['"@target-uri"'] }), 'missing-component');
});

test('missing and malformed signature fields', async () => {
  const policy = { keys: keysFor(KEYS.hmac), now: NOW };
  await rejectsWith(verify(reference(), policy), 'missing-signature');
  const { req } = await signed(reference(), KEYS.hmac);
  const without = (name) => ({ ...req, headers: req.headers.filter(([n]) => n !== name) });
  await rejectsWith(verify(without('Signature'), policy), 'malformed-signature');
  await rejectsWith(verify(without('Signature-Input'), policy), 'malformed-signature');
  const input = req.headers.find(([n]) => n === 'Signature-Input')[1];
  const malformed = [
    '',
    'sig1',
    'sig1=',
    'sig1=("@method"',
    'sig1=("@method");created=1;created=2',
    `${input}, ${input}`,
    'sig1=("@method" "@method");created=1',
    input.replace('"content-digest")', '"content-digest" "@path";req)'),
    'sig1=("@unknown");created=1',
    'sig1=("@signature-params");created=1',
    'sig1=("Content-Type");created=1',
    'sig1=("content-type";foo);created=1',
    'sig1=("content-type";sf=?0);created=1',
    'sig1=("content-type";bs;sf);created=1',
    'sig1=("@query-param");created=1',
    'sig1=("@query-param";name=x);created=1',
    'sig1=("@method";name="x");created=1',
    'sig1=(@method);created=1',
    'sig1=("@method");created="1"',
    'sig1=("@method");created=-1',
    'sig1=("@method");created=1.5',
    'sig1=("@method");keyid=k',
    'sig1=("@method");nonce=?1',
    'sig1="@method"',
    'SIG1=("@method")',
    'sig1=("@method"),',
    'sig1=("@méthod")',
  ];
  for (const value of malformed) {
    const msg = withHeaders(req, { 'Signature-Input': value });
    await assert.rejects(verify(msg, policy), (err) => {
      assert.ok(err instanceof SignatureError, `${JSON.stringify(value)}: ${err}`);
      assert.ok(['malformed-signature', 'missing-signature'].includes(err.reason), `${JSON.stringify(value)}: ${err.reason}`);
      return true;
    });
  }
  for (const value of ['sig1=("@method")', 'sig1=:AAAA', 'sig1=:AAAA:, sig1=:AAAA:', 'sig2=:AAAA:']) {
    await rejectsWith(verify(withHeaders(req, { Signature: value }), policy), 'malformed-signature');
  }
});

test('random damage to the signature fields never escapes as anything but a SignatureError', async () => {
  const { req } = await signed(reference(), KEYS.ed25519);
  const input = req.headers.find(([n]) => n === 'Signature-Input')[1];
  const sig = req.headers.find(([n]) => n === 'Signature')[1];
  let s = 0x9421;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
  const alphabet = ' \t,;=()"\\:?*-._/aZ09@%\x7f';
  const damage = (v) => {
    const at = Math.floor(rand() * (v.length + 1));
    const ch = alphabet[Math.floor(rand() * alphabet.length)];
    return rand() < 0.5 ? v.slice(0, at) + ch + v.slice(at) : v.slice(0, at) + v.slice(at + 1);
  };
  const counts = {};
  for (let i = 0; i < 1500; i++) {
    const field = i % 3 === 0 ? { Signature: damage(sig) } : { 'Signature-Input': damage(damage(input)) };
    try {
      await verify(withHeaders(req, field), { keys: keysFor(KEYS.ed25519), now: NOW });
      counts.ok = (counts.ok || 0) + 1;
    } catch (err) {
      assert.ok(err instanceof SignatureError, `${JSON.stringify(field)}: ${err.stack}`);
      counts[err.reason] = (counts[err.reason] || 0) + 1;
    }
  }
  assert.ok(counts["malformed-signature"] > 100, JSON.stringify(counts));
});

test('duplicate and unknown component identifiers are refused when signing', async () => {
  const req = reference();
  const k = { keyId: 'k', key: SECRET, created: NOW };
  await assert.rejects(sign(req, { ...k, components: ['@method', '"@method"'] }), { reason: 'malformed-signature', message: /duplicate/ });
  await assert.rejects(sign(req, { ...k, components: ['"@query-param";name="customer"', '"@query-param";name="customer"'] }), /duplicate/);
  await assert.rejects(sign(req, { ...k, components: ['@nope'] }), /unknown derived component/);
  await assert.rejects(sign(req, { ...k, components: ['"content-type";nope'] }), /unknown component parameter/);
  await assert.rejects(sign(req, { ...k, components: ['x-missing'] }), { reason: 'missing-component' });
  await assert.rejects(sign(req, { ...k, label: 'Bad Label' }), TypeError);
  await assert.rejects(sign(req, { ...k, keyId: 'tab\there' }), TypeError);
  await assert.rejects(sign(req, { key: SECRET }), /keyId/);
  // Header names are case-insensitive; identifiers given as names are lower-cased.
  const out = await sign(req, { ...k, nonce: false, components: ['Content-Type', '@path'] });
  assert.match(out.headers['Signature-Input'], /^sig1=\("content-type" "@path"\)/);
  assert.match(out.headers['Content-Digest'], /^sha-256=/, 'content gets its digest even when not covered');
  await assert.rejects(sign({ method: 'GET', url: 'https://a.example/' }, { ...k, components: ['content-digest'] }), { reason: 'missing-component' });
});

test('responses: @status and ;req components', async () => {
  const request = { method: 'POST', url: 'https://api.example.com/v1/orders', headers: { 'Content-Type': 'application/json' }, body: '{}' };
  const response = { status: 201, headers: { 'content-type': 'application/json' }, body: '{"id":1}' };
  const out = await sign(response, {
    keyId: 'srv', key: ED.privateKey, created: NOW, request,
    components: ['@status', 'content-type', 'content-digest', '"@method";req', '"@path";req', '"content-type";req'],
  });
  assert.match(out.base, /^"@status": 201\n"content-type": application\/json\n"content-digest": sha-256=.*\n"@method";req: POST\n"@path";req: \/v1\/orders\n"content-type";req: application\/json\n/);
  const signedResponse = { ...response, headers: { ...response.headers, ...out.headers } };
  const policy = { keys: { srv: { alg: 'ed25519', key: ED.publicKey } }, now: NOW, request };
  const result = await verify(signedResponse, policy);
  assert.equal(result.base, out.base);
  await rejectsWith(verify(signedResponse, { ...policy, request: { ...request, method: 'PUT' } }), 'bad-signature');
  await rejectsWith(verify(signedResponse, { ...policy, request: undefined }), 'missing-component');
  const def = await sign(response, { keyId: 'srv', key: ED.privateKey, created: NOW, nonce: 'n' });
  assert.match(def.headers['Signature-Input'], /^sig1=\("@status" "content-type" "content-digest"\)/);
  assert.throws(() => signatureBase(request, { components: ['@status'] }), { reason: 'malformed-signature' });
  assert.throws(() => signatureBase(response, { components: ['@method'] }), { reason: 'malformed-signature' });
  assert.throws(() => signatureBase(response, { components: ['"@status";req'] }, { request }), { reason: 'malformed-signature' });
  assert.throws(() => signatureBase(request, { components: ['"@method";req'] }), { reason: 'malformed-signature' });
});

test('stream bodies: signed through a Content-Digest set by the caller', async () => {
  const { Readable } = await import('node:stream');
  const body = Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]);
  await assert.rejects(sign({ ...reference(), body }, { keyId: 'k', key: SECRET }), /Content-Digest/);
  const digest = 'sha-256=:' + (await import('node:crypto')).createHash('sha256').update('{"a":1}').digest('base64') + ':';
  const req = { ...reference(), headers: [...reference().headers, ['Content-Digest', digest]], body: Readable.from([Buffer.from('{"a":1}')]) };
  const out = await sign(req, { keyId: 'k', key: SECRET, created: NOW });
  assert.equal(out.headers['Content-Digest'], undefined, 'the caller’s value is signed as it is');
  assert.match(out.base, /"content-digest": sha-256=/);
  const signedReq = withHeaders({ ...req, body: Readable.from(['{"a":', '1}']) }, out.headers);
  await verify(signedReq, { keys: { k: { alg: 'hmac-sha256', key: SECRET } }, now: NOW });
});

test('signing a message that already has a signature adds to its fields', async () => {
  const first = await signed(reference(), KEYS.hmac);
  await assert.rejects(sign(first.req, { keyId: 'x', key: SECRET }), /already has a signature labelled sig1/);
  const second = await sign(first.req, { keyId: KEYS.ed25519.keyId, key: KEYS.ed25519.key, label: 'sig2', created: NOW });
  assert.match(second.headers['Signature-Input'], /^sig1=\(.*, sig2=\(/);
  assert.match(second.headers.Signature, /^sig1=:.*:, sig2=:.*:$/);
  const both = withHeaders(first.req, second.headers);
  const result = await verify(both, { keys: { ...keysFor(KEYS.hmac), ...keysFor(KEYS.ed25519) }, now: NOW });
  assert.deepEqual(result.signatures.map((s) => s.keyId), ['sk_test_abc', 'pk_test_ed']);
});

test('Signature-Input and Signature serialization round-trip', () => {
  const sigBytes = new Uint8Array([1, 2, 3]);
  const { signatureInput, signature } = serializeSignatures([
    { label: 'a', components: ['@method', '"@query-param";name="x"'], params: { created: 1, keyid: 'k' }, signature: sigBytes },
    { label: 'b', components: [], params: [['nonce', 'n'], ['created', 2]], signature: sigBytes },
  ]);
  assert.equal(signatureInput, 'a=("@method" "@query-param";name="x");created=1;keyid="k", b=();nonce="n";created=2');
  assert.equal(signature, 'a=:AQID:, b=:AQID:');
  const parsed = parseSignatures(signatureInput, signature);
  assert.deepEqual(parsed.map((p) => p.label), ['a', 'b']);
  assert.deepEqual(parsed[0].components, ['"@method"', '"@query-param";name="x"']);
  assert.deepEqual(parsed[1].params, { nonce: 'n', created: 2 });
  assert.deepEqual([...parsed[1].signature], [1, 2, 3]);
  assert.equal(parsed[1].signatureParams, '();nonce="n";created=2');
});

test('Accept-Signature parsing', () => {
  const v = 'sig1=("@method" "@target-uri" "@authority" "content-digest" "cache-control");keyid="test-key-rsa-pss";created;tag="app-123", '
    + 'sig2=("@method" "@authority" "@path" "@query" "content-type" "content-digest" "@query-param";name="id");created;expires;nonce="abc";alg="ed25519"';
  const parsed = parseAcceptSignature(v);
  assert.equal(parsed.length, 2);
  assert.deepEqual(parsed[0], {
    label: 'sig1',
    components: ['"@method"', '"@target-uri"', '"@authority"', '"content-digest"', '"cache-control"'],
    params: { keyid: 'test-key-rsa-pss', created: true, tag: 'app-123' },
  });
  assert.deepEqual(parsed[1].params, { created: true, expires: true, nonce: 'abc', alg: 'ed25519' });
  assert.throws(() => parseAcceptSignature('sig1=("@method");created=1'), /takes no value/);
  assert.throws(() => parseAcceptSignature('sig1=("@method");nonce'), /must be a String/);
  assert.throws(() => parseAcceptSignature('sig1=("@method"), sig1=("@path")'), /duplicate/);
  assert.equal(parsed[1].components[6], '"@query-param";name="id"');
  assert.throws(() => parseAcceptSignature('sig1="@method"'), SyntaxError);
  assert.throws(() => parseAcceptSignature('sig1=("@bogus")'), SyntaxError);
  assert.throws(() => parseAcceptSignature('sig1=("@method"'), SyntaxError);
  assert.deepEqual(parseAcceptSignature(''), []);
});

test('Key objects never show their material', async () => {
  const key = await importKey(SECRET);
  assert.ok(key instanceof Key);
  assert.equal(JSON.stringify(key), '{"alg":"hmac-sha256","type":"secret"}');
  assert.equal(inspect(key), "Key { alg: 'hmac-sha256', type: 'secret' }");
  assert.equal(await key.verify(new Uint8Array([0x78]), new Uint8Array(3)), false, 'a MAC of the wrong length is simply invalid');
  assert.throws(() => new Key(Symbol('signet.Key'), 'hmac-sha256', 'secret', undefined, undefined), /importKey/);
});

test('node:http messages: IncomingMessage-like requests, HTTP/1.1 and HTTP/2', async () => {
  const { Readable } = await import('node:stream');
  const { req: plain, out } = await signed({ ...reference(), url: 'https://api.example.com/v1/orders?customer=42&expand=items' });
  const fields = [['Host', 'API.example.com'], ['Content-Type', 'application/json'], ...Object.entries(out.headers)];
  const incoming = (rawHeaders, encrypted) => Object.assign(Readable.from([Buffer.from(plain.body)]), {
    method: 'POST', url: '/v1/orders?customer=42&expand=items', rawHeaders, socket: { encrypted },
  });
  const policy = { keys: keysFor(KEYS.hmac), now: NOW };
  const h1 = await verify(incoming(fields.flat(), true), policy);
  assert.equal(Buffer.from(h1.body).toString(), plain.body, 'the body is read from the stream');
  const h2 = fields.filter(([n]) => n !== 'Host').flat();
  await verify(incoming([':method', 'POST', ':authority', 'api.example.com', ':scheme', 'https', ':path', '/v1/orders?customer=42&expand=items', ...h2], true), policy);
  // A framework that already read the body passes it in.
  const drained = incoming(fields.flat(), false);
  for await (const chunk of drained) assert.ok(chunk);
  await verify(drained, { ...policy, body: plain.body });
  await rejectsWith(verify(incoming(fields.flat(), false), { ...policy, body: '{}' }), 'digest-mismatch');
});
