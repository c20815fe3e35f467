// Type-checked (tsc --noEmit, part of npm test) against the declarations
// generated into types/, through the package's own exports map. Never run.

import {
  ALGORITHMS,
  MemoryNonceStore,
  NonceStoreFullError,
  Reason,
  SignatureError,
  contentDigest,
  createSignedFetch,
  generateKeyPair,
  generateNonce,
  importKey,
  parseAcceptSignature,
  parseSignatures,
  readProblem,
  sf,
  sign,
  signatureBase,
  verify,
  verifyContentDigest,
  presign,
  verifiedResponse,
  verifyResponse,
  GatewayKeys,
  jwkThumbprint,
  GATEWAY_TAG,
  RESPONSE_TAG,
  KEYS_PATH,
  type Algorithm,
  type Key,
  type ReasonCode,
  type SignResult,
  type VerifyResult,
} from '@signet/client';
import http from 'node:http';
import { createReadStream } from 'node:fs';
import { createSecretKey } from 'node:crypto';
import {
  contentDigest as nodeDigest,
  importKey as importNodeKey,
  readKeyFile,
  sign as nodeSign,
  createSignedFetch as createNodeSignedFetch,
  type Key as NodeKey,
} from '@signet/client/node';

export async function examples(): Promise<void> {
  const secret = 'uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==';

  // Signing a plain request; repeated fields as pairs.
  const out: SignResult = await sign(
    {
      method: 'POST',
      url: 'https://api.example.com/v1/orders?customer=42&expand=items',
      headers: [['Content-Type', 'application/json'], ['Accept', 'application/json'], ['Accept', '*/*']],
      body: JSON.stringify({ customer: 42 }),
    },
    { keyId: 'sk_test_abc', key: secret, alg: 'hmac-sha256', tag: 'orders', expiresIn: 60 },
  );
  const sigInput: string = out.headers['Signature-Input'];
  const digest: string | undefined = out.headers['Content-Digest'];
  console.log(sigInput, digest, out.base);

  // Signing a WHATWG Request with an Ed25519 key; explicit components.
  const { privateKey, publicKey } = await generateKeyPair('ed25519');
  const request = new Request('https://api.example.com/v1/items', { method: 'GET' });
  await sign(request, { keyId: 'pk_1', key: privateKey, components: ['@method', '@path', '"@query-param";name="id"'], nonce: generateNonce() });

  // Verifying, with a key resolver and a nonce store.
  const key: Key = await importKey(publicKey, 'ed25519');
  const alg: Algorithm = key.alg;
  const nonces = new MemoryNonceStore({ maxEntries: 1 << 16 });
  try {
    const result: VerifyResult = await verify(request, {
      keys: async (keyId) => (keyId === 'pk_1' ? key : keyId === 'sk_test_abc' ? { alg: 'hmac-sha256', key: secret } : null),
      maxAge: 300,
      clockSkew: 30,
      requiredParams: ['created', 'keyid', 'nonce'],
      algorithms: ['ed25519', 'hmac-sha256'],
      label: ['sig1'],
      nonces,
    });
    console.log(result.keyId, result.signatures.length, alg);
  } catch (err) {
    if (err instanceof SignatureError) {
      const reason: ReasonCode = err.reason;
      console.log(reason === Reason.BadSignature, err.label);
    } else if (err instanceof NonceStoreFullError) {
      console.log('503', nonces.size);
    }
  }

  // A node:http server verifying its requests.
  http.createServer(async (req, res) => {
    try {
      await verify(req, { keys: { sk_test_abc: { alg: 'hmac-sha256', key: secret } }, nonces });
      res.end('ok');
    } catch (err) {
      res.statusCode = 401;
      res.end(err instanceof SignatureError ? err.reason : 'error');
    }
  });

  // The fetch wrapper.
  const signedFetch = createSignedFetch({ keyId: 'sk_test_abc', key: secret });
  const res = await signedFetch('https://api.example.com/v1/orders', { method: 'POST', body: '{}' });
  if (res.status === 401) {
    const problem = await readProblem(res);
    console.log(problem?.reason, parseAcceptSignature(res.headers.get('accept-signature') ?? ''), signedFetch.clockOffset('https://api.example.com'));
  }

  // Digests, fields, the base, structured fields.
  const d: string = await contentDigest('{"hello": "world"}', 'sha-512');
  await verifyContentDigest(d, new Uint8Array([1, 2]));
  const parsed = parseSignatures(sigInput, out.headers.Signature);
  const created: number | undefined = parsed[0]?.params.created;
  console.log(created, signatureBase({ method: 'GET', url: 'https://e.example/' }, { components: ['@method'], params: { created: 1 } }));
  const dict = sf.parseDictionary('a=1, b=(x y);p=?0');
  const first = dict.get('a');
  if (first && !Array.isArray(first.value)) console.log(sf.serializeItem(first), new sf.Token('t').value);
  console.log(ALGORITHMS.includes('ed25519'));

  // Keys from Web Crypto, and the raw operations.
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']) as CryptoKeyPair;
  const fromPair: Key = await importKey(pair);
  const sig: Uint8Array = await fromPair.sign(new TextEncoder().encode('base'));
  const ok: boolean = await fromPair.verify(new TextEncoder().encode('base'), sig);
  console.log(ok, fromPair.canSign, signedFetch.setClockOffset('https://api.example.com', 3));
}

// The Node.js entry point: everything above, plus key files and KeyObjects.
export async function nodeExamples(): Promise<void> {
  const fromFile: NodeKey = await readKeyFile('/etc/signet/client.key');
  const fromObject = await importNodeKey(createSecretKey(new Uint8Array(32)));
  const digest: string = await nodeDigest(createReadStream('/tmp/upload.bin'));
  await nodeSign({ method: 'GET', url: 'https://api.example.com/' }, { keyId: 'k', key: fromFile });
  console.log(fromObject.alg, digest);
}

// Presigned URLs and the gateway's signed responses.
export async function presignAndResponses(): Promise<void> {
  const url: string = await presign('https://api.example.com/v1/files/7', { keyId: 'k', key: 'c2VjcmV0', expiresIn: 900, singleUse: true });
  const keys = new GatewayKeys('https://api.example.com' + KEYS_PATH, { pins: ['thumbprint'] });
  const f = createNodeSignedFetch({ keyId: 'k', key: 'c2VjcmV0', gatewayKeys: keys, requireSignedResponses: true });
  const res: Response = await f(url);
  const result = verifiedResponse(res);
  if (result && result.tag === GATEWAY_TAG) console.log(result.keyId);
  const checked: Response = await verifyResponse(res, { request: { method: 'GET', url, headers: [] }, keys });
  console.log(await checked.text(), RESPONSE_TAG, await jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: 'AA' }));
}

// The server entry point.
import {
  Identity,
  MemoryNonceStore as ServerMemoryNonceStore,
  RedisNonceStore,
  ServerReason,
  createVerifier,
  trustGateway,
  verifyApi,
  type Outcome,
  type ServerKey,
  type TrustGatewayOptions,
  type VerifierOptions,
  type Vouched,
} from '@signet/client/server';

export async function serverExamples(redis: { evalSha: Function, eval: Function }): Promise<void> {
  const key: ServerKey = { key: 'c2VjcmV0', owner: 'acme', scopes: ['orders:read'] };
  const options: VerifierOptions = {
    keys: async (keyId: string) => (keyId === 'sk_1' ? key : null),
    nonces: new RedisNonceStore(redis, { prefix: 'app:', onLoss: (h: Date) => console.log(h.toISOString()) }),
    policy: { maxAge: 60, tag: 'orders' },
    onOutcome: (req, o: Outcome) => console.log(req.url, o.status, o.reason, o.elapsed),
  };
  const verifier = createVerifier(options);
  const express: (req: any, res: any, next: (err?: unknown) => void) => void = verifier.middleware;
  const guard = verifier.requireScopes('orders:read');
  http.createServer(verifier.handler((req, res) => {
    const id: Identity = req.signet;
    res.end(`${id.keyId} ${id.owner} ${id.hasScope('orders:read')} ${req.rawBody?.length}`);
  }, { scopes: ['orders:read'] })).on('upgrade', async (req, socket) => {
    const id: Identity | null = await verifier.verifyUpgrade(req, socket, { scopes: ['stream'] });
    console.log(id?.scopes);
  });
  const remote = createVerifier({ keys: verifyApi({ url: 'http://127.0.0.1:9090', keyId: 'sk_srv', key: 'c2VjcmV0' }) });
  const memory = createVerifier({ keys: new Map([['k', key]]), nonces: new ServerMemoryNonceStore({ maxEntries: 1000 }) });
  console.log(express, guard, remote.bodyBudgetLeft, memory.fastify, ServerReason.BodyTooLarge, await RedisNonceStore.prepare(redis));
}

export function trustExamples(): void {
  const options: TrustGatewayOptions = { jwksUrl: 'http://127.0.0.1:9090/.well-known/signet-keys', refresh: 60_000, maxAge: 30 };
  const trust = trustGateway(options);
  const express: (req: any, res: any, next: (err?: unknown) => void) => void = trust.middleware;
  http.createServer(trust.handler((req, res) => {
    const id: Identity | null = req.signet;
    const v: Vouched = req.signetGateway;
    res.end(`${id?.owner} ${v.keyId} ${v.public} ${v.requestId} ${req.rawBody?.length}`);
  }, { scopes: ['orders:read'] })).on('upgrade', async (req, socket) => {
    const v: Vouched | null = await trust.verifyUpgrade(req, socket);
    console.log(v?.keyId);
  });
  console.log(express, trust.requireScopes('admin'), trust.fastify, trustGateway({ keys: { kid: { kty: 'OKP', crv: 'Ed25519', x: 'AA' } } }));
}
