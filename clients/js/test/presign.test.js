// Presigned URLs: the vectors of testdata/signet/presign.json (made by the
// Go package) made byte for byte, refusals refused, and each URL's
// signature checked back with verify.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PRESIGN_TAG, importKey, presign, verify } from '../index.js';

const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../../testdata/signet/presign.json', import.meta.url)), 'utf8'));

const optionsOf = (v) => ({
  keyId: v.key_id, key: v.key, alg: v.alg, method: v.method || undefined, expiresIn: v.expires,
  created: v.created, singleUse: v.nonce !== undefined, nonce: v.nonce,
});

for (const v of vectors) {
  test(`presign vector: ${v.name}`, async () => {
    if (v.want === undefined) {
      await assert.rejects(presign(v.url, optionsOf(v)), TypeError);
      return;
    }
    assert.equal(await presign(v.url, optionsOf(v)), v.want);
  });
}

/**
 * Takes a presigned URL apart as a server does: the target without the
 * two parameters, and the signature fields they hold.
 * @param {string} u
 */
function unpresign(u) {
  const url = new URL(u);
  const input = url.searchParams.get('signet-input');
  const signature = url.searchParams.get('signet-sig');
  const query = url.search.slice(1).split('&').filter((p) => !/^signet-(input|sig)=/.test(p)).join('&');
  return {
    method: 'GET',
    url: `${url.origin}${url.pathname}${query ? `?${query}` : ''}`,
    headers: [['Signature-Input', input], ['Signature', signature]],
  };
}

test('a presigned URL verifies as the profile says', async () => {
  const { privateKey, publicKey } = await (await import('../index.js')).generateKeyPair('ed25519');
  const now = Math.floor(Date.now() / 1000);
  for (const singleUse of [false, true]) {
    const u = await presign('https://api.example.com/v1/img/7.png?size=large&v=2#top', {
      keyId: 'pk_1', key: privateKey, expiresIn: 90.5, singleUse,
    });
    assert.ok(u.endsWith('#top'));
    assert.ok(u.startsWith('https://api.example.com/v1/img/7.png?size=large&v=2&signet-input=sig1%3D%28'));
    const result = await verify(unpresign(u.split('#')[0]), {
      keys: { pk_1: { key: publicKey } },
      requiredComponents: ['@method', '@authority', '@path', '@query'],
      requiredParams: ['created', 'keyid', 'expires'],
      tag: PRESIGN_TAG,
      nonces: false,
    });
    assert.equal(result.expires, result.created + 91);
    assert.ok(Math.abs(result.created - now) <= 2);
    assert.equal(result.nonce !== undefined, singleUse);
    if (singleUse) assert.match(result.nonce, /^[A-Za-z0-9_-]{22}$/);
  }
});

test('presign refuses what it cannot sign', async () => {
  const key = await importKey('c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0');
  const ok = { keyId: 'k', key, expiresIn: 60 };
  await assert.rejects(presign('https://a.example/x', { keyId: 'k', key }), /expiresIn/);
  await assert.rejects(presign('https://a.example/x', { ...ok, expiresIn: -1 }), /expiresIn/);
  await assert.rejects(presign('https://a.example/x', { ...ok, method: 'GE T' }), /not an HTTP method/);
  await assert.rejects(presign('https://a.example/x', { ...ok, nonce: 'n' }), /single-use/);
  await assert.rejects(presign('https://a.example/x?q=<b>', ok), /percent-encode/);
  await assert.rejects(presign('https://a.example/é', ok), /percent-encode/);
});
