// What a server must check of a request before and after its signatures,
// so that what the application acts on is what was verified: the target,
// the Host, hop-by-hop fields, repeated field lines. The same rules as the
// Go middleware (middleware.checkRequest, ValidHost, coveredHopByHop,
// combineCovered).

/**
 * The field lines of a node:http request, lower-cased name → values in
 * the order received.
 * @param {readonly string[]} rawHeaders
 * @returns {Map<string, string[]>}
 */
export function fieldLines(rawHeaders) {
  /** @type {Map<string, string[]>} */
  const lines = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const v = lines.get(name);
    if (v) v.push(rawHeaders[i + 1]);
    else lines.set(name, [rawHeaders[i + 1]]);
  }
  return lines;
}

/** @param {number} c */
const isDigit = (c) => c >= 0x30 && c <= 0x39;
/** @param {number} c */
const isHex = (c) => isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
/** @param {number} c */
const isAlnum = (c) => isDigit(c) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);

/**
 * Reports whether host is an authority that @authority covers
 * unambiguously: a registered name of letters, digits, "-", ".", "_" and
 * "~", an IPv4 address, or an IPv6 address in brackets without a zone,
 * then an optional ":" and decimal port.
 * @param {string} host
 */
export function validHost(host) {
  let name = host;
  let port = '';
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return false;
    name = host.slice(1, end);
    port = host.slice(end + 1);
    if (name === '') return false;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      // Not a zone ("%25eth0"), among others.
      if (!(isHex(c) || c === 0x3a || c === 0x2e)) return false;
    }
    if (port !== '') {
      if (port[0] !== ':') return false;
      port = port.slice(1);
    }
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (!(isAlnum(c) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e)) return false;
    }
  }
  for (let i = 0; i < port.length; i++) {
    if (!isDigit(port.charCodeAt(i))) return false;
  }
  return true;
}

// The fields a proxy removes whether or not the Connection field names
// them (RFC 9110 §7.6.1, and the older ones proxies still drop).
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * The name of a covered field that a proxy would remove on the way (the
 * Connection field names it, or it is hop-by-hop by definition), or "".
 * @param {Map<string, string[]>} lines
 * @param {readonly import('../components.js').Component[]} covered
 */
export function coveredHopByHop(lines, covered) {
  const conn = new Set();
  for (const line of lines.get('connection') || []) {
    for (const tok of line.split(',')) conn.add(tok.trim().toLowerCase());
  }
  for (const c of covered) {
    if (c.name.startsWith('@')) continue;
    if (HOP_BY_HOP.has(c.name) || conn.has(c.name)) return c.name;
  }
  return '';
}

/**
 * Sets the covered fields that came on several lines in headers (a
 * node:http req.headers) to the one value the signature covered (RFC 9421
 * §2.1: the lines joined with ", "), so that the application reads what
 * was verified: node:http keeps only the first line of some fields
 * (Content-Type, Authorization, …) and joins Cookie lines with "; ". A
 * field covered with bs anywhere, or as a trailer, is left as it is. Returns
 * the name of a field whose value cannot be one line, because its last
 * line is empty; "" when all is well.
 * @param {Record<string, string | string[] | undefined>} headers
 * @param {Map<string, string[]>} lines
 * @param {readonly import('../components.js').Component[]} covered
 */
export function combineCovered(headers, lines, covered) {
  const bs = new Set(covered.filter((c) => c.params.has('bs')).map((c) => c.name));
  for (const c of covered) {
    if (c.name.startsWith('@') || c.params.has('tr') || bs.has(c.name) || c.name === 'set-cookie') continue;
    const v = lines.get(c.name);
    if (!v || v.length < 2) continue;
    if (v[v.length - 1] === '') return c.name;
    headers[c.name] = v.join(', ');
  }
  return '';
}
