// Runs the real `signet serve` of this repository for a test: builds the
// binary with Go (without Go the caller skips, or fails when CI=true),
// makes a SQLite key store with a first admin key, and starts the gateway
// on free ports of 127.0.0.1. Everything is removed by stop().

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSignedFetch } from '../../index.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitForPort(port, proc) {
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) throw new Error(`signet serve exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('signet serve did not start listening');
}

/**
 * Starts signet serve. Returns { skip } when Go is missing outside CI.
 * @param {{ upstream: string, args?: string[] }} options
 */
export async function startSignet(options) {
  const dir = mkdtempSync(join(tmpdir(), 'signet-js-serve-'));
  const signet = join(dir, 'signet');
  try {
    execFileSync('go', ['build', '-o', signet, './cmd/signet'], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env.CI === 'true') throw new Error(`cannot build signet (CI=true requires it): ${err.message}`);
    return { skip: `cannot build signet with go: ${err.message}` };
  }
  const db = join(dir, 'keys.db');
  /** Makes a key in the store, as an operator does with the CLI. */
  const createKey = (/** @type {string[]} */ ...args) => {
    const c = JSON.parse(execFileSync(signet, ['keys', 'create', '--db', db, '--json', ...args], { encoding: 'utf8' }));
    return { keyId: c.key.id, key: c.secret };
  };
  const admin = createKey('--owner', 'ops', '--scopes', 'admin');
  const port = await freePort();
  const adminPort = await freePort();
  const proc = spawn(signet, ['serve', '--upstream', options.upstream,
    '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--db', db, '--log-level', 'warn', '--drain', '0',
    ...(options.args || [])],
  { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, proc);
  await waitForPort(adminPort, proc);
  const adminURL = `http://127.0.0.1:${adminPort}`;
  const adminFetch = createSignedFetch(admin);
  return {
    url: `http://127.0.0.1:${port}`,
    adminURL,
    createKey,
    /** Calls the admin API with the admin key. */
    async admin(/** @type {string} */ method, /** @type {string} */ path, /** @type {any} */ body) {
      const res = await adminFetch(adminURL + path, body === undefined ? { method } : { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return JSON.parse(text);
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.on('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
