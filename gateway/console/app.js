// The Signet admin console: a page of the admin listener that manages keys
// through the admin API. It has no login: the operator loads an admin key
// (an Ed25519 private key or an HMAC secret), which is imported into Web
// Crypto as a non-extractable key and held in this module's memory only,
// and every call to the API is signed with it (RFC 9421) by the JavaScript
// client, served by the same listener. Reloading or closing the tab forgets
// it. Everything on the page is built with DOM calls, never from HTML text,
// so that nothing the API returns can run as markup.

import { createSignedFetch, generateKeyPair, importKey, readProblem } from '/ui/signet/index.js';

/** @type {{ keyId: string, alg: string, extractable: boolean, fetch: Function } | null} */
let session = null;

// Object URLs of private keys generated here, revoked when the page moves on.
const objectURLs = [];

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const errorBox = /** @type {HTMLElement} */ (document.getElementById('error'));
const noticeBox = /** @type {HTMLElement} */ (document.getElementById('notice'));
const sessionBox = /** @type {HTMLElement} */ (document.getElementById('session'));

// ---------- DOM helpers ----------

/**
 * Builds an element: attrs are set as properties when the element has one
 * (value, checked, textContent…), else as attributes; "on…" are listeners.
 * Children are nodes or text.
 */
function h(tag, attrs = {}, ...children) {
  const el = tag === 'svg' || attrs.svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false || k === 'svg') continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k in el && !(el instanceof SVGElement) && typeof v !== 'boolean' && k !== 'spellcheck') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let uid = 0;
/** A label and its control, tied by id. */
function field(label, control, hint) {
  control.id ||= `f${++uid}`;
  const parts = [h('label', { htmlFor: control.id }, label), control];
  if (hint) {
    const hid = `${control.id}-hint`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('p', { class: 'hint', id: hid }, hint));
  }
  return parts;
}

function status(s) {
  return h('span', { class: `status status-${s}` }, s);
}

function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function keyLink(id) {
  return h('a', { href: `#/key/${encodeURIComponent(id)}`, class: 'id' }, id);
}

function say(message) {
  noticeBox.textContent = message || '';
}

function fail(err) {
  errorBox.textContent = err ? (err instanceof Error ? err.message : String(err)) : '';
}

// ---------- the admin API ----------

class ApiError extends Error {
  constructor(status, problem) {
    const reason = problem && problem.reason;
    super(explain(status, problem));
    this.status = status;
    this.reason = reason;
    this.problem = problem;
  }
}

const reasons = {
  'missing-signature': 'the request was not signed.',
  'unknown-key': 'no key has this id in the key store.',
  'bad-signature': 'the signature did not verify: the secret or private key does not belong to this key id.',
  'key-revoked': 'this key is revoked.',
  'key-disabled': 'this key is disabled.',
  'key-expired': 'this key has expired.',
  'algorithm-mismatch': 'this key id is bound to another algorithm than the key loaded.',
  expired: 'the signature was too old: check this computer\'s clock.',
  'not-yet-valid': 'the signature was made in the future: check this computer\'s clock.',
  'insufficient-scope': 'this key does not hold the admin scope, so it cannot use the admin API. Load a key made with --scopes admin.',
  'precondition-failed': 'someone changed this key since you loaded it: reload it and make your change again.',
};

function explain(status, p) {
  const reason = p && p.reason;
  if (status === 401 || status === 403) {
    return `The admin API refused the key (${status} ${reason || 'refused'}): ${reasons[reason] || (p && p.detail) || 'no reason given.'}`;
  }
  if (reason && reasons[reason]) return `${status} ${reason}: ${reasons[reason]}`;
  return `${status} ${reason || 'error'}${p && p.detail ? `: ${p.detail}` : ''}`;
}

/**
 * Calls the admin API, signed; resolves to { data, etag }, or rejects with
 * an ApiError.
 */
async function api(method, path, body, headers = {}) {
  if (!session) throw new Error('Load an admin key first.');
  const init = { method, headers: { accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    if (!init.headers['content-type']) init.headers['content-type'] = 'application/json';
  }
  const res = await session.fetch(new URL(path, location.origin).href, init);
  if (res.ok) return { data: await res.json(), etag: res.headers.get('etag') };
  const p = await readProblem(res);
  throw new ApiError(res.status, p);
}

// ---------- the admin key ----------

function fromBase64(text) {
  const bin = atob(text.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Imports key material as a non-extractable Web Crypto key: a PKCS#8
 * Ed25519 private key (PEM), or an HMAC-SHA256 secret (base64). The bytes
 * are overwritten once imported.
 */
async function importAdminKey(text) {
  text = text.trim();
  if (text.startsWith('-----BEGIN')) {
    const m = /^-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END \1-----$/.exec(text);
    if (!m) throw new Error('The key file is not PEM text.');
    if (m[1] !== 'PRIVATE KEY') throw new Error(`The console takes a PKCS#8 private key (BEGIN PRIVATE KEY), as signet keygen writes, not a ${m[1]}.`);
    const der = fromBase64(m[2]);
    try {
      const key = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
      return { key, alg: 'ed25519' };
    } catch {
      throw new Error('The private key is not an Ed25519 key: the console signs with Ed25519 keys and HMAC secrets.');
    } finally {
      der.fill(0);
    }
  }
  let raw;
  try {
    raw = fromBase64(text);
  } catch {
    throw new Error('The secret is not base64 text, nor the key file PEM.');
  }
  if (raw.length < 32) throw new Error('An HMAC secret has 256 bits: this is too short.');
  try {
    const key = await crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return { key, alg: 'hmac-sha256' };
  } finally {
    raw.fill(0);
  }
}

async function loadSession(keyId, text) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new Error('Web Crypto is not available: open the console over HTTPS, or on 127.0.0.1 / localhost (an SSH tunnel will do).');
  }
  const { key, alg } = await importAdminKey(text);
  const signing = await importKey(key);
  const candidate = { keyId, alg, extractable: key.extractable, fetch: createSignedFetch({ keyId, key: signing }) };
  const previous = session;
  session = candidate;
  try {
    await api('GET', '/v1/keys?limit=1');
  } catch (err) {
    session = previous;
    throw err;
  }
  renderSession();
}

function forget() {
  session = null;
  renderSession();
  location.hash = '#/keys';
  route();
}

function renderSession() {
  sessionBox.replaceChildren();
  if (!session) return;
  sessionBox.append(
    h('span', { id: 'session-key' },
      'Signing as ', h('span', { class: 'id' }, session.keyId), ` (${session.alg}, `,
      session.extractable ? 'extractable' : 'not extractable', ', held in this tab only)'),
    h('button', { type: 'button', onclick: forget }, 'Forget key'),
  );
}

function viewLoad(wanted) {
  const id = h('input', { name: 'keyid', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'sk_… or pk_…' });
  const file = h('input', { type: 'file', name: 'keyfile' });
  const paste = h('input', { type: 'password', name: 'secret', autocomplete: 'off', spellcheck: 'false' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Load key');
  const form = h('form', { class: 'stack', id: 'load-form', 'aria-labelledby': 'load-title' },
    ...field('Admin key id', id),
    ...field('Private key file (Ed25519, PEM) or HMAC secret file', file),
    ...field('… or paste the HMAC secret or the private key', paste),
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fail();
    button.disabled = true;
    try {
      let text = paste.value;
      if (!text && file.files && file.files[0]) text = await file.files[0].text();
      if (!text) throw new Error('Choose a key file or paste the secret.');
      await loadSession(id.value.trim(), text);
      say(`Admin key ${id.value.trim()} loaded.`);
      location.hash = wanted && wanted !== '#/' ? wanted : '#/keys';
      route();
    } catch (err) {
      fail(err);
    } finally {
      paste.value = '';
      file.value = '';
      button.disabled = false;
    }
  });
  return [
    h('h1', { id: 'load-title' }, 'Load an admin key'),
    h('p', {}, 'The console has no login. It signs every call to the admin API with an admin key (one that holds the ',
      h('code', {}, 'admin'), ' scope), here in this page. The key is imported into Web Crypto as non-extractable and kept in this tab\'s memory only: nothing is stored, and reloading or closing the tab forgets it.'),
    form,
  ];
}

// ---------- routing ----------

const routes = [
  [/^#\/keys(?:\?(.*))?$/, (m) => viewKeys(new URLSearchParams(m[1] || ''))],
  [/^#\/key\/([^/?]+)$/, (m) => viewKey(decodeURIComponent(m[1]))],
  [/^#\/create$/, () => viewCreate()],
  [/^#\/usage$/, () => viewUsage()],
  [/^#\/audit$/, () => viewAudit()],
];

let rendering = 0;

async function route() {
  const hash = location.hash || '#/keys';
  const n = ++rendering;
  for (const u of objectURLs.splice(0)) URL.revokeObjectURL(u);
  fail();
  for (const a of document.querySelectorAll('nav a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.setAttribute('aria-busy', 'true');
  let content;
  if (!session) {
    content = viewLoad(hash);
  } else {
    const r = routes.find(([re]) => re.test(hash));
    try {
      content = r ? await r[1](hash.match(r[0])) : [h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/keys' }, 'Keys'))];
    } catch (err) {
      content = [h('h1', {}, 'Could not load this page')];
      fail(err);
    }
  }
  if (n !== rendering) return;
  main.replaceChildren(...content);
  main.removeAttribute('aria-busy');
  const title = main.querySelector('h1');
  document.title = `${title ? title.textContent : 'Signet'} · Signet admin`;
  main.focus();
}

window.addEventListener('hashchange', () => {
  say();
  route();
});

// ---------- keys ----------

async function viewKeys(params) {
  const q = new URLSearchParams();
  for (const k of ['owner', 'status', 'scope', 'prefix', 'cursor']) if (params.get(k)) q.set(k, params.get(k));
  q.set('limit', '50');
  const { data } = await api('GET', `/v1/keys?${q}`);

  const owner = h('input', { name: 'owner', value: params.get('owner') || '' });
  const st = h('select', { name: 'status' },
    ['', 'active', 'expiring', 'expired', 'disabled', 'revoked'].map((s) => h('option', { value: s, selected: s === (params.get('status') || '') }, s || 'not revoked')));
  const scope = h('input', { name: 'scope', value: params.get('scope') || '' });
  const prefix = h('input', { name: 'prefix', value: params.get('prefix') || '' });
  const filters = h('form', { class: 'inline', role: 'search', 'aria-label': 'Filter keys' },
    h('label', {}, 'Owner', owner), h('label', {}, 'Status', st), h('label', {}, 'Scope', scope), h('label', {}, 'Key id starts with', prefix),
    h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const [k, el] of [['owner', owner], ['status', st], ['scope', scope], ['prefix', prefix]]) if (el.value.trim()) f.set(k, el.value.trim());
    location.hash = `#/keys${f.size ? `?${f}` : ''}`;
  });

  const rows = data.keys.map((k) => h('tr', {},
    h('td', {}, keyLink(k.id)), h('td', {}, k.owner), h('td', {}, k.alg), h('td', {}, status(k.status)),
    h('td', {}, k.scopes.join(', ') || '—'), h('td', {}, k.label || ''), h('td', { class: 'nowrap' }, when(k.created)),
    h('td', { class: 'nowrap' }, when(k.last_used))));
  const base = new URLSearchParams(params);
  base.delete('cursor');
  const pager = h('div', { class: 'actions' });
  if (params.get('cursor')) pager.append(h('a', { class: 'button', href: `#/keys${base.size ? `?${base}` : ''}` }, 'First page'));
  if (data.next) {
    const next = new URLSearchParams(base);
    next.set('cursor', data.next);
    pager.append(h('a', { class: 'button', href: `#/keys?${next}`, id: 'next-page' }, 'Next page'));
  }
  return [
    h('h1', {}, 'Keys'),
    filters,
    h('table', { id: 'keys' },
      h('caption', {}, `${data.keys.length} key${data.keys.length === 1 ? '' : 's'}${data.next ? ' on this page' : ''}, oldest first`),
      h('thead', {}, h('tr', {}, ['Key', 'Owner', 'Algorithm', 'Status', 'Scopes', 'Label', 'Created', 'Last used'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colSpan: 8 }, 'No keys match.')))),
    pager,
  ];
}

function limitsText(k) {
  const rate = k.rate_limit ? `${k.rate_limit.rate}, burst ${k.rate_limit.burst}` : 'the gateway\'s default';
  const uses = k.uses ? `${k.uses.remaining} remaining${k.uses.refill ? `, refilled to ${k.uses.refill}` : ''}` : 'no budget';
  return { rate, uses };
}

async function chainOf(k) {
  const before = [];
  let p = k.predecessor;
  for (let i = 0; p && i < 10; i++) {
    const { data } = await api('GET', `/v1/keys/${encodeURIComponent(p)}`);
    before.unshift(data);
    p = data.predecessor;
  }
  const after = [];
  let s = k.successor;
  for (let i = 0; s && i < 10; i++) {
    const { data } = await api('GET', `/v1/keys/${encodeURIComponent(s)}`);
    after.push(data);
    s = data.successor;
  }
  return [...before, k, ...after];
}

async function viewKey(id) {
  const path = `/v1/keys/${encodeURIComponent(id)}`;
  const [{ data: k, etag }, usage, audit] = await Promise.all([
    api('GET', path), api('GET', `${path}/usage?since=24h`), api('GET', `/v1/audit?key=${encodeURIComponent(id)}`),
  ]);
  const chain = await chainOf(k);
  const { rate, uses } = limitsText(k);
  const live = k.status !== 'revoked';

  const actions = h('div', { class: 'actions' });
  if (live) {
    actions.append(
      k.disabled
        ? h('button', { type: 'button', id: 'enable', onclick: () => act('enable', k.id) }, 'Enable')
        : h('button', { type: 'button', id: 'disable', onclick: () => act('disable', k.id) }, 'Disable'),
      h('button', { type: 'button', class: 'danger', id: 'revoke', onclick: () => confirmRevoke(k.id) }, 'Revoke…'));
  }

  return [
    h('h1', {}, 'Key ', h('span', { class: 'id' }, k.id), ' ', status(k.status)),
    actions,
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'details-h' },
        h('h2', { id: 'details-h' }, 'Details'),
        h('dl', { class: 'fields', id: 'details' },
          ...[['Status', status(k.status)], ['Owner', k.owner], ['Algorithm', k.alg], ['Label', k.label || '—'],
            ['Scopes', k.scopes.join(', ') || '—'], ['Created', when(k.created)], ['Expires', k.expires ? when(k.expires) : 'never'],
            ['Last used', when(k.last_used)], ['Disabled', k.disabled ? when(k.disabled) : 'no'], ['Revoked', k.revoked ? when(k.revoked) : 'no'],
            ['Rate limit', rate], ['Uses', uses], ['Version', String(k.version)]]
            .flatMap(([t, d]) => [h('dt', {}, t), h('dd', {}, d)])),
        k.metadata ? [h('h2', {}, 'Metadata'), h('pre', { id: 'metadata' }, JSON.stringify(k.metadata, null, 2))] : null,
        k.public_key ? [h('h2', {}, 'Public key'), h('pre', {}, k.public_key)] : null),
      h('section', { 'aria-labelledby': 'chain-h' },
        h('h2', { id: 'chain-h' }, 'Rotation chain'),
        chain.length > 1
          ? h('ol', { class: 'chain', id: 'chain' }, chain.map((c) => h('li', { 'aria-current': c.id === k.id ? 'true' : null },
            c.id === k.id ? h('span', { class: 'id' }, c.id) : keyLink(c.id), ' ', status(c.status))))
          : h('p', {}, 'Not rotated.'),
        live && !k.successor ? rotateForm(k) : null,
        live ? editForm(k, etag) : null)),
    usageSection('Usage, last 24 hours', usage.data, 'key-usage'),
    auditTable(audit.data.events.slice().reverse(), 'Audit trail', false),
  ];
}

async function act(what, id) {
  fail();
  try {
    await api('POST', `/v1/keys/${encodeURIComponent(id)}/${what}`);
    say(`Key ${id} ${what}d.`);
    await route();
  } catch (err) {
    fail(err);
  }
}

function confirmRevoke(id) {
  const yes = h('button', { type: 'button', class: 'danger', id: 'confirm-revoke' }, 'Revoke');
  const no = h('button', { type: 'button', id: 'cancel-revoke' }, 'Cancel');
  const dialog = h('dialog', { 'aria-labelledby': 'revoke-title', 'aria-describedby': 'revoke-text' },
    h('h2', { id: 'revoke-title' }, 'Revoke this key?'),
    h('p', { id: 'revoke-text' }, 'Key ', h('span', { class: 'id' }, id),
      ' will be refused by every gateway within a second. A revoked key cannot be enabled again: to pause a key, disable it instead.'),
    h('div', { class: 'actions' }, no, yes));
  no.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => dialog.remove());
  yes.addEventListener('click', async () => {
    dialog.close();
    fail();
    try {
      await api('POST', `/v1/keys/${encodeURIComponent(id)}/revoke`);
      say(`Key ${id} revoked.`);
      await route();
    } catch (err) {
      fail(err);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  no.focus();
}

/** The controls to register a public key: paste, upload, or generate here. */
function publicKeyInput(purpose) {
  const text = h('textarea', { name: 'public_key', rows: 4, spellcheck: 'false', placeholder: '-----BEGIN PUBLIC KEY-----' });
  const file = h('input', { type: 'file', name: 'public_key_file' });
  file.addEventListener('change', async () => {
    if (file.files && file.files[0]) text.value = await file.files[0].text();
  });
  const out = h('div', { 'aria-live': 'polite' });
  const state = { link: null };
  const gen = h('button', { type: 'button', class: 'generate' }, 'Generate a key pair in this browser');
  gen.addEventListener('click', async () => {
    fail();
    try {
      const pair = await generateKeyPair('ed25519');
      text.value = pair.publicKey;
      const url = URL.createObjectURL(new Blob([pair.privateKey], { type: 'application/x-pem-file' }));
      objectURLs.push(url);
      state.link = h('a', { href: url, download: `${purpose}.key`, class: 'button', id: 'download-private' }, 'Download the private key');
      out.replaceChildren(h('div', { class: 'once' },
        h('p', {}, h('strong', {}, 'Download the private key now. '),
          'It was made in this page and never leaves it; the server gets only the public key, and leaving this page forgets it.'),
        state.link));
    } catch (err) {
      fail(err);
    }
  });
  return {
    nodes: [h('fieldset', {}, h('legend', {}, 'Public key (Ed25519)'),
      ...field('Paste the public key (PEM or JWK)', text), ...field('… or upload it', file), h('div', {}, gen), out)],
    value: () => text.value.trim(),
    state,
  };
}

/** Shows a secret once, with copy and download, or the key made. */
function createdPanel(c, generated) {
  const nodes = [h('p', { id: 'created-key' }, 'Key ', keyLink(c.key.id), ' made for ', c.key.owner, '.')];
  if (c.secret) {
    const url = URL.createObjectURL(new Blob([`${c.secret}\n`], { type: 'text/plain' }));
    objectURLs.push(url);
    const copy = h('button', { type: 'button', id: 'copy-secret' }, 'Copy');
    const secret = h('output', { class: 'secret', id: 'secret', 'aria-label': 'HMAC secret' }, c.secret);
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(c.secret);
        say('Secret copied.');
      } catch {
        getSelection().selectAllChildren(secret);
        say('Copying was refused: the secret is selected, copy it with the keyboard.');
      }
    });
    nodes.push(h('div', { class: 'once', id: 'secret-panel' },
      h('h2', {}, 'HMAC secret: shown this once'),
      h('p', {}, 'Give it to the client now. The server keeps it only sealed and will never show it again; this page forgets it when you leave it.'),
      secret,
      h('div', { class: 'actions' }, copy, h('a', { href: url, download: `${c.key.id}.key`, class: 'button', id: 'download-secret' }, 'Download as a key file'))));
  } else if (generated && generated.link) {
    generated.link.download = `${c.key.id}.key`;
    nodes.push(h('div', { class: 'once' }, h('p', {}, 'Download the private key if you have not: ', generated.link)));
  }
  return nodes;
}

function rotateForm(k) {
  const overlap = h('input', { name: 'overlap', value: '24h' });
  const pub = k.alg === 'hmac-sha256' ? null : publicKeyInput(`${k.id}-successor`);
  const form = h('form', { class: 'stack', id: 'rotate-form' },
    ...field('Overlap', overlap, 'How long the old key keeps working beside the new one: 24h, 7d, 0s to stop it at once.'),
    pub ? pub.nodes : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Rotate')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fail();
    try {
      const body = { overlap: overlap.value.trim() };
      if (pub) body.public_key = pub.value();
      const { data } = await api('POST', `/v1/keys/${encodeURIComponent(k.id)}/rotate`, body);
      form.replaceWith(h('div', {}, h('p', {}, 'Rotated: the old key keeps working until its overlap ends, beside its successor.'),
        ...createdPanel(data, pub && pub.state)));
      say(`Key ${k.id} rotated; its successor is ${data.key.id}.`);
    } catch (err) {
      fail(err);
    }
  });
  return h('details', { id: 'rotate' }, h('summary', {}, 'Rotate'), form);
}

function editForm(k, etag) {
  const label = h('input', { name: 'label', value: k.label || '' });
  const scopes = h('input', { name: 'scopes', value: k.scopes.join(', ') });
  const expires = h('input', { name: 'expires', value: '', placeholder: k.expires ? when(k.expires) : 'never' });
  const metadata = h('textarea', { name: 'metadata', rows: 3, spellcheck: 'false', value: k.metadata ? JSON.stringify(k.metadata) : '' });
  const rate = h('input', { name: 'rate', value: k.rate_limit ? k.rate_limit.rate : '', placeholder: '100/s' });
  const burst = h('input', { name: 'burst', type: 'number', min: 1, value: k.rate_limit ? String(k.rate_limit.burst) : '' });
  const remaining = h('input', { name: 'uses', type: 'number', min: 0, value: k.uses ? String(k.uses.remaining) : '' });
  const refill = h('input', { name: 'refill', value: k.uses && k.uses.refill ? k.uses.refill : '', placeholder: '1000/day' });
  const form = h('form', { class: 'stack', id: 'edit-form' },
    ...field('Label', label), ...field('Scopes', scopes, 'Comma-separated, such as orders:read, orders:write.'),
    ...field('Expires', expires, 'Empty: unchanged. "never", a duration from now (90d) or an RFC 3339 time.'),
    ...field('Metadata (JSON object)', metadata, 'At most 4 KiB; empty removes it.'),
    h('fieldset', { class: 'pair' }, h('legend', {}, 'Limits'),
      h('div', {}, ...field('Rate limit', rate, 'Such as 100/s; empty: the gateway\'s default.')), h('div', {}, ...field('Burst', burst)),
      h('div', {}, ...field('Remaining uses', remaining, 'A change starts a new budget now; empty: none.')), h('div', {}, ...field('Refill', refill, 'Such as 1000/day.'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save changes')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fail();
    try {
      const patch = {};
      if (label.value !== (k.label || '')) patch.label = label.value === '' ? null : label.value;
      const sc = scopes.value.split(/[\s,]+/).filter(Boolean);
      if (sc.join(',') !== k.scopes.join(',')) patch.scopes = sc;
      if (expires.value.trim()) patch.expires = expires.value.trim() === 'never' ? null : expires.value.trim();
      const md = metadata.value.trim();
      if (md !== (k.metadata ? JSON.stringify(k.metadata) : '')) {
        try {
          patch.metadata = md === '' ? null : JSON.parse(md);
        } catch {
          throw new Error('The metadata is not JSON.');
        }
      }
      const rl = rate.value.trim() ? { rate: rate.value.trim(), ...(burst.value ? { burst: Number(burst.value) } : {}) } : null;
      const oldRl = k.rate_limit ? { rate: k.rate_limit.rate, burst: k.rate_limit.burst } : null;
      if (JSON.stringify(rl) !== JSON.stringify(oldRl)) patch.rate_limit = rl;
      const us = remaining.value !== '' ? { remaining: Number(remaining.value), ...(refill.value.trim() ? { refill: refill.value.trim() } : {}) } : null;
      const oldUs = k.uses ? { remaining: k.uses.remaining, ...(k.uses.refill ? { refill: k.uses.refill } : {}) } : null;
      if (JSON.stringify(us) !== JSON.stringify(oldUs)) patch.uses = us;
      if (Object.keys(patch).length === 0) {
        say('Nothing to change.');
        return;
      }
      await api('PATCH', `/v1/keys/${encodeURIComponent(k.id)}`, patch, { 'content-type': 'application/merge-patch+json', 'if-match': etag });
      say(`Key ${k.id} changed.`);
      await route();
    } catch (err) {
      fail(err);
    }
  });
  return h('details', { id: 'edit' }, h('summary', {}, 'Edit label, scopes, expiry, metadata and limits'), form);
}

// ---------- create ----------

function viewCreate() {
  const owner = h('input', { name: 'owner', required: true, autocomplete: 'off' });
  const alg = h('select', { name: 'alg' }, h('option', { value: 'hmac-sha256' }, 'hmac-sha256 (a secret made by the server)'),
    h('option', { value: 'ed25519' }, 'ed25519 (a public key; the private key stays with the client)'));
  const pub = publicKeyInput('signet-ed25519');
  const pubBox = h('div', { hidden: true }, pub.nodes);
  alg.addEventListener('change', () => { pubBox.hidden = alg.value === 'hmac-sha256'; });
  const scopes = h('input', { name: 'scopes', autocomplete: 'off' });
  const label = h('input', { name: 'label', autocomplete: 'off' });
  const expires = h('input', { name: 'expires', autocomplete: 'off', placeholder: '90d' });
  const metadata = h('textarea', { name: 'metadata', rows: 2, spellcheck: 'false', placeholder: '{"plan": "pro"}' });
  const rate = h('input', { name: 'rate', placeholder: '100/s' });
  const burst = h('input', { name: 'burst', type: 'number', min: 1 });
  const uses = h('input', { name: 'uses', type: 'number', min: 0 });
  const refill = h('input', { name: 'refill', placeholder: '1000/day' });
  const result = h('div', { id: 'create-result', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { class: 'stack', id: 'create-form' },
    ...field('Owner', owner, 'The client or user the key belongs to.'), ...field('Algorithm', alg), pubBox,
    ...field('Scopes', scopes, 'Comma-separated, such as orders:read, orders:write.'), ...field('Label', label),
    ...field('Expires', expires, 'Empty: never. A duration from now (90d) or an RFC 3339 time.'),
    ...field('Metadata (JSON object)', metadata),
    h('fieldset', { class: 'pair' }, h('legend', {}, 'Limits (optional)'),
      h('div', {}, ...field('Rate limit', rate, 'Empty: the gateway\'s default.')), h('div', {}, ...field('Burst', burst, 'Default: the rate\'s count.')),
      h('div', {}, ...field('Uses', uses, 'A budget of requests; empty: none.')), h('div', {}, ...field('Refill', refill, 'Such as 1000/day.'))),
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fail();
    button.disabled = true;
    try {
      const body = { owner: owner.value.trim(), alg: alg.value };
      const sc = scopes.value.split(/[\s,]+/).filter(Boolean);
      if (sc.length) body.scopes = sc;
      if (label.value.trim()) body.label = label.value.trim();
      if (expires.value.trim()) body.expires = expires.value.trim();
      if (metadata.value.trim()) {
        try {
          body.metadata = JSON.parse(metadata.value);
        } catch {
          throw new Error('The metadata is not JSON.');
        }
      }
      if (rate.value.trim()) body.rate_limit = { rate: rate.value.trim(), ...(burst.value ? { burst: Number(burst.value) } : {}) };
      if (uses.value !== '') body.uses = { remaining: Number(uses.value), ...(refill.value.trim() ? { refill: refill.value.trim() } : {}) };
      if (alg.value !== 'hmac-sha256') {
        body.public_key = pub.value();
        if (!body.public_key) throw new Error('Paste, upload or generate the public key.');
      }
      const { data } = await api('POST', '/v1/keys', body);
      form.hidden = true;
      result.replaceChildren(...createdPanel(data, pub.state),
        h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/key/${encodeURIComponent(data.key.id)}` }, 'Open the key'),
          h('button', { type: 'button', id: 'create-another', onclick: () => route() }, 'Create another')));
      say(`Key ${data.key.id} created.`);
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return [h('h1', {}, 'Create a key'), form, result];
}

// ---------- usage ----------

function refusedReasons(report) {
  const all = new Set(Object.keys(report.total.refused));
  return [...all].sort();
}

/**
 * A bar per hour: accepted at the bottom, then each reason of refusal in its
 * own colour. A picture of the table after it, which has the numbers.
 */
function chart(report, hours, reasonsSeen) {
  const w = 720;
  const hgt = 160;
  const pad = 18;
  const byHour = new Map();
  for (const x of report.hours) {
    const t = Date.parse(x.hour);
    const e = byHour.get(t) || { accepted: 0, refused: {} };
    e.accepted += x.accepted;
    for (const [r, n] of Object.entries(x.refused)) e.refused[r] = (e.refused[r] || 0) + n;
    byHour.set(t, e);
  }
  const total = (e) => e.accepted + Object.values(e.refused).reduce((a, b) => a + b, 0);
  const end = Math.floor(Date.now() / 3600e3) * 3600e3;
  const slots = [];
  for (let i = hours - 1; i >= 0; i--) slots.push(end - i * 3600e3);
  const max = Math.max(1, ...slots.map((t) => (byHour.has(t) ? total(byHour.get(t)) : 0)));
  const bw = (w - 2 * pad) / slots.length;
  const scale = (hgt - 2 * pad) / max;
  const svg = h('svg', { class: 'chart', viewBox: `0 0 ${w} ${hgt}`, role: 'img',
    'aria-label': `Requests per hour over the last ${hours} hours, accepted and refused by reason; the table below has the numbers` });
  slots.forEach((t, i) => {
    const e = byHour.get(t) || { accepted: 0, refused: {} };
    const x = pad + i * bw + 1;
    let y = hgt - pad;
    const g = h('g', { svg: true });
    const parts = [['accepted', e.accepted, 'accepted'], ...reasonsSeen.map((r, k) => [r, e.refused[r] || 0, `r${k % 6}`])];
    g.append(h('title', { svg: true }, `${when(t)}: ${parts.filter(([, n]) => n).map(([r, n]) => `${n} ${r}`).join(', ') || 'none'}`));
    for (const [, n, cls] of parts) {
      if (!n) continue;
      y -= n * scale;
      g.append(h('rect', { svg: true, class: cls, x, y, width: Math.max(1, bw - 2), height: n * scale }));
    }
    svg.append(g);
    if (i % 6 === 0) svg.append(h('text', { svg: true, class: 'axis', x, y: hgt - 4 }, new Date(t).toISOString().slice(11, 16)));
  });
  svg.append(h('text', { svg: true, class: 'axis', x: pad, y: 12 }, `max ${max}/h`));
  return [svg, h('p', { class: 'legend' }, h('span', {}, h('span', { class: 'swatch accepted' }), 'accepted'),
    reasonsSeen.map((r, k) => h('span', {}, h('span', { class: `swatch r${k % 6}` }), r)))];
}

function usageSection(title, report, id) {
  const reasonsSeen = refusedReasons(report);
  const refusedTotal = Object.values(report.total.refused).reduce((a, b) => a + b, 0);
  return h('section', { 'aria-labelledby': `${id}-h`, id },
    h('h2', { id: `${id}-h` }, title),
    h('p', { class: 'totals' }, `${report.total.accepted} accepted, ${refusedTotal} refused`,
      reasonsSeen.length ? ` (${reasonsSeen.map((r) => `${r}: ${report.total.refused[r]}`).join(', ')})` : ''),
    chart(report, 24, reasonsSeen),
    h('table', {},
      h('caption', {}, 'Requests per hour (UTC)'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Hour'), h('th', { scope: 'col', class: 'num' }, 'accepted'),
        reasonsSeen.map((r) => h('th', { scope: 'col', class: 'num' }, r)))),
      h('tbody', {}, report.hours.length
        ? report.hours.map((x) => h('tr', {}, h('td', { class: 'nowrap' }, when(x.hour)), h('td', { class: 'num' }, String(x.accepted)),
          reasonsSeen.map((r) => h('td', { class: 'num' }, String(x.refused[r] || 0)))))
        : h('tr', {}, h('td', { colSpan: 2 + reasonsSeen.length }, 'No requests counted yet.')))));
}

async function viewUsage() {
  const [hour, day] = await Promise.all([api('GET', '/v1/usage?since=1h'), api('GET', '/v1/usage?since=24h')]);
  const reasonsSeen = [...new Set([...refusedReasons(hour.data), ...refusedReasons(day.data)])].sort();
  const row = (name, a, b) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', { class: 'num' }, String(a)), h('td', { class: 'num' }, String(b)));
  return [
    h('h1', {}, 'Usage'),
    h('p', { class: 'hint' }, 'Every request the gateways counted, those whose keyid named no key included. Gateways write their counts every few seconds.'),
    h('table', { id: 'refusals' },
      h('caption', {}, 'Refusals across all keys, by reason'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col', class: 'num' }, 'Last hour'), h('th', { scope: 'col', class: 'num' }, 'Last day'))),
      h('tbody', {}, row('accepted', hour.data.total.accepted, day.data.total.accepted),
        reasonsSeen.map((r) => row(r, hour.data.total.refused[r] || 0, day.data.total.refused[r] || 0)))),
    usageSection('Every key, last 24 hours', day.data, 'all-usage'),
  ];
}

// ---------- audit ----------

function auditTable(events, title, withKey = true) {
  return h('section', { 'aria-labelledby': 'audit-h' },
    h('h2', { id: 'audit-h' }, title),
    h('table', { id: 'audit' },
      h('caption', {}, `${events.length} event${events.length === 1 ? '' : 's'}, newest first`),
      h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', withKey ? 'Key' : null, 'Detail'].filter(Boolean).map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, events.map((e) => h('tr', {}, h('td', { class: 'nowrap' }, when(e.time)), h('td', {}, e.actor), h('td', { class: 'nowrap' }, e.action),
        withKey ? h('td', {}, e.key_id ? keyLink(e.key_id) : '—') : null, h('td', {}, e.detail || ''))))));
}

async function viewAudit() {
  const { data } = await api('GET', '/v1/audit?limit=500');
  return [h('h1', {}, 'Audit log'), h('p', { class: 'hint' }, 'The last 500 changes, with the admin key or CLI user that made each.'),
    auditTable(data.events.slice().reverse(), 'Changes')];
}

route();
