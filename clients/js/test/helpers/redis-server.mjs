// One of the two processes of the shared-Redis test: an Express server on
// 127.0.0.1 whose nonces are in Redis under $PREFIX, through a $KIND
// client. Both stand behind the same name, as behind a load balancer:
// @authority is its X-Forwarded-Host. Prints its origin, then serves
// until killed.
import http from 'node:http';
import express from 'express';
import { RedisNonceStore, createVerifier } from '../../server.js';
import { clientKinds } from './redis.js';

const { client } = await clientKinds[process.env.KIND]();
const store = new RedisNonceStore(client, { prefix: process.env.PREFIX });
await store.ready();
const verifier = createVerifier({
  keys: { [process.env.KEY_ID]: { key: process.env.SECRET } },
  nonces: store,
  authority: (req) => req.headers['x-forwarded-host'],
});
const app = express();
app.use(verifier.middleware);
app.get('/v1/orders/:id', (req, res) => res.json({ id: req.params.id }));
const server = http.createServer(app).listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
