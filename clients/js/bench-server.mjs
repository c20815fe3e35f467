// The overhead of the server middleware: requests per second of the same
// Express app with and without `verifier.middleware`, on 127.0.0.1, over the reference request of DESIGN.md (POST
// /v1/orders?customer=42&expand=items, Content-Type: application/json, a
// 1 KiB body, signed with hmac-sha256 in the default profile). Every
// request carries a signature of its own (signed before the run), so the
// nonce store works as in production.
//
// `npm run bench:server`. The apps run in child processes; the load
// generator here writes requests serialized in advance on BENCH_CONNECTIONS
// (default 16) keep-alive connections to 127.0.0.1, one at a time each, for
// BENCH_SECONDS (default 3), and counts the 200s. The two apps take turns,
// BENCH_ROUNDS rounds (default 5), after a warm-up; the medians are
// reported, with the CPU time each app spent per request (less sensitive
// than the rate to other work on the machine).

import { fork } from 'node:child_process';
import { once } from 'node:events';
import { cpus } from 'node:os';
import net from 'node:net';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);
const SECONDS = Number(process.env.BENCH_SECONDS || 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 16);
const SECRET = 'uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==';
const TARGET = '/v1/orders?customer=42&expand=items';

function jsonBody(size) {
  const head = '{"customer":42,"items":[{"sku":"A-1","qty":2}],"note":"';
  const tail = '"}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
}

if (process.argv[2] === 'app') {
  // The app under test: plain, or behind the verifier.
  const { default: express } = await import('express');
  const http = await import('node:http');
  const app = express();
  if (process.argv[3] === 'signet') {
    const { MemoryNonceStore, createVerifier } = await import('./server.js');
    const verifier = createVerifier({ keys: { sk_bench: { key: SECRET, owner: 'bench', scopes: [] } }, nonces: new MemoryNonceStore({ maxEntries: 1 << 20 }) });
    app.use(verifier.middleware);
  }
  app.use(express.json());
  app.post('/v1/orders', (req, res) => res.json({ ok: true, items: req.body.items.length }));
  let served = 0;
  const server = http.createServer((req, res) => {
    served++;
    app(req, res);
  }).listen(0, '127.0.0.1', () => process.send(server.address().port));
  // The CPU time the app used, and the requests it served: per request,
  // less sensitive to a busy machine than the rate.
  process.on('message', () => process.send({ cpu: process.cpuUsage(), served }));
  process.on('SIGTERM', () => process.exit(0));
} else {
  const { importKey, sign } = await import('./index.js');
  const body = jsonBody(1024);
  const start = async (kind) => {
    const child = fork(new URL(import.meta.url), ['app', kind], { stdio: 'inherit', execArgv: process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [] });
    const [port] = await once(child, 'message');
    return { child, port };
  };
  const usage = async (child) => {
    child.send('usage');
    const [u] = await once(child, 'message');
    return u;
  };
  // The requests, serialized in advance, so that the load generator does
  // no more than write them and count the answers.
  const request = (headers) => {
    let head = `POST ${TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    return Buffer.from(`${head}\r\n${body}`, 'latin1');
  };
  const key = await importKey(SECRET);
  const signed = [];
  const signMore = async (n) => {
    for (let i = 0; i < n; i++) {
      const { headers } = await sign({ method: 'POST', url: `http://127.0.0.1${TARGET}`, headers: { 'Content-Type': 'application/json' }, body }, { keyId: 'sk_bench', key });
      signed.push(request(headers));
    }
  };
  const plainRequest = request({});
  const run = async ({ port, child }, next) => {
    const before = await usage(child);
    const t0 = performance.now();
    const deadline = t0 + SECONDS * 1000;
    let done = 0;
    const connection = () => new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const send = () => {
        const req = performance.now() < deadline ? next() : null;
        if (!req) {
          sock.end();
          resolve(undefined);
          return;
        }
        sock.write(req);
      };
      sock.on('connect', send);
      sock.on('data', (d) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          if (!head.startsWith('HTTP/1.1 200')) {
            reject(new Error(`answer: ${buf.subarray(0, end + 4 + len).toString('latin1')}`));
            sock.destroy();
            return;
          }
          buf = buf.subarray(end + 4 + len);
          done++;
          send();
        }
      });
      sock.on('error', reject);
    });
    await Promise.all(Array.from({ length: CONNECTIONS }, connection));
    const elapsed = (performance.now() - t0) / 1000;
    const after = await usage(child);
    const cpu = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / (after.served - before.served);
    return { rate: done / elapsed, cpu };
  };

  const plain = await start('plain');
  const signet = await start('signet');
  const rounds = { plain: [], signet: [] };
  try {
    // A warm-up of each, not counted.
    await signMore(2000);
    await run(plain, () => plainRequest);
    await run(signet, () => signed.pop());
    for (let r = 0; r < ROUNDS; r++) {
      const p = await run(plain, () => plainRequest);
      rounds.plain.push(p);
      // Enough signatures for the round, each used once.
      await signMore(Math.ceil(1.5 * p.rate * SECONDS) - signed.length);
      rounds.signet.push(await run(signet, () => signed.pop()));
    }
  } finally {
    plain.child.kill();
    signet.child.kill();
  }
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const m = (kind, what) => median(rounds[kind].map((x) => x[what]));
  console.log(`node ${process.version}, ${cpus().length} CPUs, ${CONNECTIONS} connections, ${Buffer.byteLength(body)}-byte JSON body; median of ${ROUNDS} × ${SECONDS} s`);
  for (const [kind, name] of [['plain', 'express alone'], ['signet', 'express + signet middleware']]) {
    console.log(`${name.padEnd(28)} ${Math.round(m(kind, 'rate')).toLocaleString('en-US').padStart(7)} req/s  ${m(kind, 'cpu').toFixed(1).padStart(6)} µs CPU/req   (rounds: ${rounds[kind].map((x) => Math.round(x.rate)).join(', ')} req/s)`);
  }
  console.log(`ratio ${(m('signet', 'rate') / m('plain', 'rate')).toFixed(2)} in req/s; the middleware costs ${(m('signet', 'cpu') - m('plain', 'cpu')).toFixed(1)} µs of CPU per request (app CPU throughput ratio ${(m('plain', 'cpu') / m('signet', 'cpu')).toFixed(2)})`);
}
