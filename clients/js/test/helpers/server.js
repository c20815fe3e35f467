// Test helpers for the server entry point: servers on 127.0.0.1, raw
// requests over a socket, and signing a request as a client sends it.

import net from 'node:net';
import { once } from 'node:events';
import { sign } from '../../index.js';

export const SECRET = 'uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==';
export const KEY_ID = 'sk_test_node';

/**
 * Listens on a free port of 127.0.0.1 and returns it; the server is
 * closed (its connections dropped) by the returned close.
 * @param {import('node:http').Server} server
 */
export async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve(undefined));
    }),
  };
}

/**
 * Sends raw bytes and reads the whole answer (the server closes, or the
 * answer's Content-Length is reached). Gives up after ms.
 * @param {number} port
 * @param {string | Buffer} bytes
 * @param {{ ms?: number, keepOpen?: boolean }} [options]
 */
export function raw(port, bytes, options = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(parse(data, true));
    }, options.ms || 3000);
    s.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const r = parse(data, false);
      if (r && r.complete && !options.keepOpen) {
        clearTimeout(timer);
        s.destroy();
        resolve(r);
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      if (data.length > 0) resolve(parse(data, true));
      else reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parse(data, true));
    });
  });
}

/**
 * Parses the last response in data (after any 1xx ones).
 * @param {Buffer} data
 * @param {boolean} final
 */
function parse(data, final) {
  const text = data.toString('latin1');
  const responses = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    /** @type {Record<string, string>} */
    const headers = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    rest = rest.slice(end + 4);
    if (status >= 100 && status < 200) {
      responses.push({ status, headers, body: '', complete: true });
      continue;
    }
    const len = headers['content-length'] === undefined ? rest.length : Number(headers['content-length']);
    const complete = rest.length >= len;
    responses.push({ status, headers, body: rest.slice(0, len), complete, interim: responses.map((r) => r.status) });
    break;
  }
  if (responses.length === 0) return final ? { status: 0, headers: {}, body: text, complete: true, interim: [] } : null;
  return responses[responses.length - 1];
}

/**
 * Signs a request to origin (path and query as given) and returns its
 * field lines, ready for fetch or raw.
 * @param {string} origin
 * @param {string} target
 * @param {{ method?: string, headers?: [string, string][], body?: string | Uint8Array, keyId?: string, key?: any, alg?: any, created?: number, nonce?: string, components?: string[], tag?: string, expires?: number }} [o]
 */
export async function signedHeaders(origin, target, o = {}) {
  const headers = o.headers || [];
  const { headers: sig } = await sign(
    { method: o.method || 'GET', url: origin + target, headers, body: o.body },
    { keyId: o.keyId || KEY_ID, key: o.key || SECRET, alg: o.alg, created: o.created, nonce: o.nonce, components: o.components, tag: o.tag, expires: o.expires },
  );
  return [...headers, ...Object.entries(sig)];
}

/**
 * A raw HTTP/1.1 request: request line, Host, the fields, the body with
 * its Content-Length (unless one is given or it is chunked).
 * @param {string} method
 * @param {string} target
 * @param {string} host
 * @param {[string, string][]} headers
 * @param {string} [body]
 */
export function rawRequest(method, target, host, headers, body = '') {
  const named = (/** @type {string} */ n) => headers.some(([k]) => k.toLowerCase() === n);
  let text = `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [k, v] of headers) text += `${k}: ${v}\r\n`;
  if (body && !named('content-length') && !named('transfer-encoding')) text += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return `${text}\r\n${body}`;
}

/**
 * The reason code at the end of a problem type.
 * @param {string} body
 */
export function reasonOf(body) {
  const p = JSON.parse(body);
  return p.type.slice(p.type.lastIndexOf('/') + 1);
}
