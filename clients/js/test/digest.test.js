// RFC 9530 Content-Digest: the digests of testdata/rfc9530/digests.json,
// streams, and the rules for received fields.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { contentDigest, verifyContentDigest, DIGEST_ALGORITHMS } from '../index.js';

const file = fileURLToPath(new URL('../../../testdata/rfc9530/digests.json', import.meta.url));
const { cases } = JSON.parse(readFileSync(file, 'utf8'));

const inputOf = (c) => Buffer.from(c.input_hex, 'hex');

test('digests.json has cases', () => {
  assert.ok(cases.length >= 10);
});

for (const c of cases) {
  test(`digests.json ${c.id} (${c.algorithm})`, async () => {
    const input = inputOf(c);
    assert.equal(input.length, c.input_length);
    if (c.input_utf8 !== null) assert.deepEqual(Buffer.from(c.input_utf8, 'utf8'), input);
    if (!DIGEST_ALGORITHMS.includes(c.algorithm)) {
      // Deprecated or unknown algorithms are ignored: on their own they
      // leave nothing to check with.
      await assert.rejects(verifyContentDigest(c.field_value, input), { reason: 'digest-mismatch', message: /no supported algorithm/ });
      return;
    }
    assert.equal(await contentDigest(input, c.algorithm), c.field_value);
    await verifyContentDigest(c.field_value, input);
    if (!c.matches_as_printed) {
      // e.g. the "…FabDg==" value printed with an extra "=": a strict
      // Byte Sequence parser refuses it.
      await assert.rejects(verifyContentDigest(`${c.algorithm}=:${c.value_as_printed}:`, input), { reason: 'digest-mismatch', message: /malformed/ });
    }
  });
}

test('sha-256 is the default; sha-512 is available', async () => {
  const body = '{"hello": "world"}';
  assert.equal(await contentDigest(body), 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:');
  assert.match(await contentDigest(body, 'sha-512'), /^sha-512=:WZDPaVn\/7XgHaAy8/);
  await assert.rejects(contentDigest(body, 'md5'), TypeError);
  assert.equal(await contentDigest(null), 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:');
});

test('every body kind gives the same digest; streams are hashed chunk by chunk', async () => {
  const text = 'x'.repeat(100_000) + 'é';
  const want = await contentDigest(Buffer.from(text, 'utf8'));
  const bytes = new TextEncoder().encode(text);
  const chunks = () => [bytes.subarray(0, 7), bytes.subarray(7, 65_536), bytes.subarray(65_536)];
  const kinds = {
    string: () => text,
    Uint8Array: () => bytes,
    ArrayBuffer: () => bytes.slice().buffer,
    DataView: () => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    Blob: () => new Blob([bytes]),
    'node Readable': () => Readable.from(chunks()),
    'string chunks': () => Readable.from([text.slice(0, 10), text.slice(10)]),
    'async generator': () => (async function* gen() { yield* chunks(); })(),
    ReadableStream: () => new ReadableStream({
      start(controller) {
        for (const c of chunks()) controller.enqueue(c);
        controller.close();
      },
    }),
  };
  for (const [name, make] of Object.entries(kinds)) {
    assert.equal(await contentDigest(make()), want, name);
    await verifyContentDigest(want, make());
  }
});

test('received fields: unknown algorithms ignored, every known one checked', async () => {
  const body = '{"hello": "world"}';
  const sha256 = 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:';
  const sha512 = await contentDigest(body, 'sha-512');
  await verifyContentDigest(`md5=:Sd/dVLAcvNLSq16eXua5uQ==:, ${sha256}`, body);
  await verifyContentDigest(`future-hash=:AAAA:, ${sha256}, ${sha512}`, body);
  await verifyContentDigest(`${sha256};param=1`, body);
  await assert.rejects(verifyContentDigest(`${sha256}, sha-512=:${Buffer.alloc(64).toString('base64')}:`, body), { reason: 'digest-mismatch' });
  await assert.rejects(verifyContentDigest(sha256, `${body} `), { reason: 'digest-mismatch' });
  await assert.rejects(verifyContentDigest('sha-256=:AAAA:', body), { reason: 'digest-mismatch' });
  await assert.rejects(verifyContentDigest('sha-256="not bytes"', body), { reason: 'digest-mismatch', message: /Byte Sequence/ });
  await assert.rejects(verifyContentDigest('sha-256=:X48E9q', body), { reason: 'digest-mismatch', message: /malformed/ });
  await assert.rejects(verifyContentDigest('', body), { reason: 'digest-mismatch' });
});
