// Reading the body of a verified request under a size limit and a budget
// of bytes held at once, and handing it on: the bytes go back into the
// request stream, so that body parsers after the middleware (express.json,
// urlencoded, raw, text, multer) read them as if nobody had.

import { refusal, ServerReason } from './problem.js';

/**
 * The number of body bytes the requests of one verifier may hold in
 * memory at once.
 */
export class Budget {
  #left;

  /** @param {number} bytes */
  constructor(bytes) {
    this.#left = bytes;
  }

  /**
   * A lease for one request: what it takes is given back by release,
   * once, when the request is done.
   */
  lease() {
    let held = 0;
    return {
      /**
       * Takes n more bytes; false, taking none, when the budget has not so
       * many left.
       * @param {number} n
       */
      take: (n) => {
        if (n > this.#left) return false;
        this.#left -= n;
        held += n;
        return true;
      },
      release: () => {
        this.#left += held;
        held = 0;
      },
    };
  }

  /** The bytes left, for tests. */
  get left() {
    return this.#left;
  }
}

/** @typedef {ReturnType<Budget['lease']>} Lease */

/**
 * The declared length of a request's body: its Content-Length, -1 when it
 * is chunked (unknown), 0 when it has none.
 * @param {import('node:http').IncomingMessage} req
 */
export function declaredLength(req) {
  if (req.headers['transfer-encoding'] !== undefined) return -1;
  const cl = req.headers['content-length'];
  return cl === undefined ? 0 : Number(cl);
}

/**
 * Reads the body of req. A body declared over the limit is refused
 * without reading any of it; one of unknown length is refused as soon as
 * it passes the limit. Bytes are taken from lease before they are held.
 * With restore set, the body is put back into req, unread.
 *
 * Throws (rejects with) a Refusal; an Error when something read the body
 * before.
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 * @param {Lease} lease
 * @param {boolean} restore
 * @returns {Promise<Buffer | null>}
 */
export function readBody(req, limit, lease, restore) {
  const declared = declaredLength(req);
  if (declared === 0) return Promise.resolve(null);
  const tooLarge = () => refusal(413, ServerReason.BodyTooLarge, `the request body is larger than the ${limit} bytes accepted`, { unread: true });
  const noBudget = () => refusal(503, ServerReason.Unavailable, 'the server has too many request bodies in memory; retry later', { unread: true });
  if (declared > limit) return Promise.reject(tooLarge());
  if (req.readableDidRead || req.readableEnded) {
    return Promise.reject(new Error('signet: the request body was read before the signature middleware: mount it before body parsers'));
  }
  if (declared > 0 && !lease.take(declared)) return Promise.reject(noBudget());
  // All arrived, and nothing: leave the stream as it is. (Reading it would
  // end it, and some parsers refuse an ended stream.)
  if (req.complete && req.readableLength === 0) return Promise.resolve(Buffer.alloc(0));

  return new Promise((resolve, reject) => {
    // Memory for what arrives, not for what is announced: the budget holds
    // a declared length, the heap only the bytes sent.
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    const done = () => {
      req.off('readable', onReadable);
      req.off('error', onError);
      req.off('close', onClose);
    };
    /** @param {unknown} r */
    const fail = (r) => {
      done();
      reject(r);
    };
    const onReadable = () => {
      while (req.readableLength > 0) {
        const c = /** @type {Buffer | null} */ (req.read());
        if (c === null) break;
        if (declared > 0) {
          if (size + c.length > declared) {
            fail(refusal(400, ServerReason.BadBody, 'the request body is longer than its Content-Length', { unread: true }));
            return;
          }
        } else {
          if (size + c.length > limit) {
            fail(tooLarge());
            return;
          }
          if (!lease.take(c.length)) {
            fail(noBudget());
            return;
          }
        }
        chunks.push(c);
        size += c.length;
      }
      if (!req.complete) return;
      done();
      if (declared > 0 && size < declared) {
        reject(refusal(400, ServerReason.BadBody, 'the request body is shorter than its Content-Length'));
        return;
      }
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      // In the same tick as the read that drained the stream: its end is
      // not emitted while it holds data again.
      if (restore && size > 0) req.unshift(body);
      resolve(body);
    };
    /** @param {Error} err */
    const onError = (err) => fail(refusal(400, ServerReason.BadBody, `the request body could not be read: ${err.message}`, { error: err, unread: true }));
    const onClose = () => fail(refusal(400, ServerReason.BadBody, 'the request body broke off', { unread: true }));
    req.on('readable', onReadable);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
