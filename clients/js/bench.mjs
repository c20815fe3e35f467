// Sign (and verify) throughput over the reference request of DESIGN.md:
// POST https://api.example.com/v1/orders?customer=42&expand=items,
// Content-Type: application/json, a 1 KiB JSON body, the default profile.
// Bounded: about half a second per case. Run with `npm run bench`.

import { generateKeyPair, importKey, sign, verify } from './index.js';

const TIME_MS = Number(process.env.BENCH_MS || 500);

function jsonBody(size) {
  const head = '{"customer":42,"items":[{"sku":"A-1","qty":2}],"note":"';
  const tail = '"}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
}

const body = jsonBody(1024);
const request = {
  method: 'POST',
  url: 'https://api.example.com/v1/orders?customer=42&expand=items',
  headers: { 'Content-Type': 'application/json' },
  body,
};

const secret = new Uint8Array(32).fill(1);
const ed = await generateKeyPair('ed25519');
const cases = [
  { name: 'hmac-sha256', keyId: 'sk_bench', sign: await importKey(secret, 'hmac-sha256'), verify: await importKey(secret, 'hmac-sha256') },
  { name: 'ed25519', keyId: 'pk_bench', sign: await importKey(ed.privateKey, 'ed25519'), verify: await importKey(ed.publicKey, 'ed25519') },
];
// The same message is verified again and again: the bench measures the
// signature work, not a nonce store, so its store accepts every nonce.
const nonces = { remember: () => true };

async function measure(fn) {
  for (let i = 0; i < 200; i++) await fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(TIME_MS) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) await fn();
    n += 100;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { opsPerSec: n / seconds, usPerOp: (seconds / n) * 1e6 };
}

console.log(`node ${process.version}, ${new TextEncoder().encode(body).length}-byte body, default profile`);
for (const c of cases) {
  const s = await measure(() => sign(request, { keyId: c.keyId, key: c.sign }));
  const signed = await sign(request, { keyId: c.keyId, key: c.sign });
  const msg = { ...request, headers: { ...request.headers, ...signed.headers } };
  const keys = new Map([[c.keyId, c.verify]]);
  const v = await measure(() => verify(msg, { keys, nonces }));
  const fmt = (r) => `${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s (${r.usPerOp.toFixed(1)} µs/op)`;
  console.log(`sign   ${c.name.padEnd(12)} ${fmt(s)}`);
  console.log(`verify ${c.name.padEnd(12)} ${fmt(v)}`);
}
