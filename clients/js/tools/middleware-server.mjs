#!/usr/bin/env node
// middleware-server: the Node.js server of the cross-language middleware
// test (internal/interop). An Express 5 app behind the verifier of
// @signet/client/server, on 127.0.0.1, that answers each accepted request
// with what it received, as JSON:
//
//   {"method","target","host","header":[[name,value],…],"body":"<base64>","key_id"}
//
// (the body as read from the request stream after the verifier, so that it
// shows the body was handed on intact). Refusals are the verifier's. The
// configuration is the JSON of $SIGNET_INTEROP:
//
//   {"keys":{"<keyid>":{"alg","key"}},"now":<unix seconds, or absent for the clock>,
//    "redis":{"url","prefix"} (absent: nonces in memory)}
//
// It prints its origin on a line, then serves until it is killed.

import http from 'node:http';
import express from 'express';
import { MemoryNonceStore, RedisNonceStore, createVerifier } from '../server.js';

const config = JSON.parse(process.env.SIGNET_INTEROP || '{}');
const now = config.now === undefined ? Date.now : () => config.now * 1000;

let nonces;
if (config.redis) {
  const { default: Redis } = await import('ioredis');
  const client = new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
  nonces = new RedisNonceStore(client, { prefix: config.redis.prefix, now });
  await nonces.ready();
} else {
  nonces = new MemoryNonceStore({ now });
}

const verifier = createVerifier({ keys: config.keys, nonces, now });
// Field values are octets; JSON carries them as their UTF-8 reading, as Go does.
const text = (/** @type {string} */ s) => Buffer.from(s, 'latin1').toString('utf8');

const app = express();
app.use(verifier.middleware);
app.use(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const header = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) header.push([req.rawHeaders[i], text(req.rawHeaders[i + 1])]);
  res.json({
    method: req.method,
    target: text(req.originalUrl),
    host: text(req.headers.host || ''),
    header,
    body: Buffer.concat(chunks).toString('base64'),
    key_id: req.signet.keyId,
  });
});

const server = http.createServer(app);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
