// Test helper: turns the HTTP/1.1 message text of the vectors (LF line
// endings) into the plain message objects that sign and verify accept.
// Portable: the browser test uses it too.

function parseFieldLines(lines) {
  const out = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && out.length > 0) {
      // obs-fold: kept raw, for the signature base code to unfold.
      out[out.length - 1][1] += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad field line ${JSON.stringify(line)}`);
    out.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return out;
}

function dechunk(text) {
  const lines = text.split('\n');
  const chunks = [];
  let i = 0;
  for (;;) {
    const size = parseInt(lines[i++], 16);
    if (size === 0) break;
    chunks.push(lines[i++]);
  }
  const trailers = parseFieldLines(lines.slice(i).filter((l) => l !== ''));
  return { body: chunks.join(''), trailers };
}

/**
 * @param {string} text
 * @param {{ scheme?: string }} [options]
 */
export function parseHttpMessage(text, options = {}) {
  const scheme = options.scheme || 'https';
  const sep = text.indexOf('\n\n');
  const head = sep >= 0 ? text.slice(0, sep) : text;
  let body = sep >= 0 ? text.slice(sep + 2) : '';
  const [start, ...fieldLines] = head.split('\n');
  const headers = parseFieldLines(fieldLines);
  let trailers;
  const te = headers.find(([n]) => n.toLowerCase() === 'transfer-encoding');
  if (te && /chunked/i.test(te[1])) ({ body, trailers } = dechunk(body));
  const bytes = new TextEncoder().encode(body);

  if (start.startsWith('HTTP/')) {
    return { status: Number(start.split(' ')[1]), headers, body: bytes, trailers };
  }
  const [method, target] = start.split(' ');
  if (target.startsWith('/') || target === '*') {
    return { method, url: target, scheme, headers, body: bytes, trailers };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    return { method, url: target, requestTarget: target, headers, body: bytes, trailers };
  }
  // authority-form (CONNECT)
  return { method, url: `${scheme}://${target}`, requestTarget: target, headers, body: bytes, trailers };
}
