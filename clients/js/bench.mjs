// Sign and verify throughput over the reference request of DESIGN.md:
// POST https://api.example.com/v1/orders?customer=42&expand=items,
// Content-Type: application/json, a 1 KiB JSON body, the default profile.
//
// `npm run bench` measures this package twice: as Node.js runs it (with
// node:crypto installed as the core's native provider, as the Node.js entry
// points do) and on Web Crypto alone (as browsers, Deno, Bun and Workers run
// it). BENCH_BASELINE=path/to/index.js measures another build of it too, in
// the same process, all taking turns, so that the ratios hold on a busy
// machine. Each case runs BENCH_ROUNDS rounds (default 5) of BENCH_MS
// milliseconds (default 200); the medians are reported.

import { cpus } from 'node:os';

const TIME_MS = Number(process.env.BENCH_MS || 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);

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
// The same message is verified again and again: the bench measures the
// signature work, not a nonce store, so its store accepts every nonce.
const nonces = { remember: () => true };

async function setup(name, lib) {
  // `await` takes the synchronous API of older builds as well.
  const secret = new Uint8Array(32).fill(1);
  const ed = await lib.generateKeyPair('ed25519');
  const cases = [];
  for (const [alg, keyId, signing, verifying] of [
    ['hmac-sha256', 'sk_bench', secret, secret],
    ['ed25519', 'pk_bench', ed.privateKey, ed.publicKey],
  ]) {
    const key = await lib.importKey(signing, alg);
    const keys = new Map([[keyId, await lib.importKey(verifying, alg)]]);
    const signed = await lib.sign(request, { keyId, key });
    const msg = { ...request, headers: { ...request.headers, ...signed.headers } };
    cases.push({ op: `sign   ${alg}`, fn: () => lib.sign(request, { keyId, key }) });
    cases.push({ op: `verify ${alg}`, fn: () => lib.verify(msg, { keys, nonces }) });
  }
  return { name, cases };
}

async function measure(fn) {
  let n = 0;
  const start = performance.now();
  const end = start + TIME_MS;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const { installNative } = await import('./lib/native.js');
const { nodeCrypto } = await import('./node-native.js');
const self = await import('./index.js');
// The two ways this package runs share its modules: each case installs or
// removes the provider before it runs.
const withProvider = (p, cases) => cases.map((c) => ({ ...c, fn: () => (installNative(p), c.fn()) }));
const builds = [
  { name: 'node', cases: withProvider(nodeCrypto, (await setup('node', self)).cases) },
  { name: 'web crypto', cases: withProvider(undefined, (await setup('web crypto', self)).cases) },
];
if (process.env.BENCH_BASELINE) {
  const url = new URL(process.env.BENCH_BASELINE, `file://${process.cwd()}/`);
  builds.push(await setup('baseline', await import(url.href)));
}

console.log(`node ${process.version}, ${cpus().length} CPUs, ${new TextEncoder().encode(body).length}-byte body, default profile; median of ${ROUNDS} × ${TIME_MS} ms`);
for (let c = 0; c < builds[0].cases.length; c++) {
  const rates = builds.map(() => []);
  for (const b of builds) for (let i = 0; i < 200; i++) await b.cases[c].fn(); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (let b = 0; b < builds.length; b++) rates[b].push(await measure(builds[b].cases[c].fn));
  }
  const fmt = (ops) => `${Math.round(ops).toLocaleString('en-US').padStart(8)} ops/s (${(1e6 / ops).toFixed(1).padStart(6)} µs/op)`;
  const medians = rates.map(median);
  let line = `${builds[0].cases[c].op.padEnd(15)} ${builds[0].name} ${fmt(medians[0])}`;
  for (let b = 1; b < builds.length; b++) {
    line += `   ${builds[b].name} ${fmt(medians[b])} (${(medians[0] / medians[b]).toFixed(2)}×)`;
  }
  console.log(line);
}
