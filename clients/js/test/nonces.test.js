// MemoryNonceStore: replays, expiry at until, the bound, each key's share.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNonceStore, NonceStoreFullError } from '../index.js';

const T0 = 1_700_000_000_000;

function storeAt(options = {}) {
  const clock = { now: T0 };
  const store = new MemoryNonceStore({ now: () => clock.now, ...options });
  return { store, clock };
}

const at = (ms) => new Date(T0 + ms);

test('a pair is recorded once, and held through until', () => {
  const { store, clock } = storeAt();
  assert.equal(store.remember('k', 'n', undefined, at(1000)), true);
  assert.equal(store.remember('k', 'n', undefined, at(5000)), false);
  assert.equal(store.remember('k2', 'n', undefined, at(1000)), true, 'nonces are per key');
  assert.equal(store.remember('k', 'n2', undefined, at(1000)), true);
  clock.now = T0 + 1000;
  assert.equal(store.remember('k', 'n', undefined, at(2000)), false, 'held through until itself');
  clock.now = T0 + 1001;
  assert.equal(store.remember('k', 'n', undefined, at(2000)), true, 'then forgotten');
  assert.equal(store.remember('k', 'n', undefined, at(2000)), false, 'and held again');
  assert.equal(store.remember('k', 'late', undefined, at(1000)), true, 'a time already past records nothing');
  assert.equal(store.remember('k', 'late', undefined, at(1000)), true);
});

test('keyid and nonce are kept apart', () => {
  const { store } = storeAt();
  assert.equal(store.remember('ab', 'c', undefined, at(1000)), true);
  assert.equal(store.remember('a', 'bc', undefined, at(1000)), true);
  assert.equal(store.remember('', 'abc', undefined, at(1000)), true);
  assert.equal(store.remember('1:a', 'b', undefined, at(1000)), true);
  assert.equal(store.remember('1', ':ab', undefined, at(1000)), true);
});

test('a full store refuses new pairs and never drops a live one', () => {
  const { store, clock } = storeAt({ maxEntries: 64 });
  let n = 0;
  for (let k = 0; ; k++) {
    let added = 0;
    for (;;) {
      try {
        store.remember(`key${k}`, `n${n}`, undefined, at(10_000 + n));
      } catch (err) {
        assert.ok(err instanceof NonceStoreFullError, String(err));
        break;
      }
      n++;
      added++;
    }
    if (added === 0) break;
  }
  assert.equal(store.size, 64, 'enough keys fill it');
  assert.equal(n, 64);
  assert.throws(() => store.remember('newcomer', 'n', undefined, at(10_000)), NonceStoreFullError);
  // Every live pair is still refused as a replay, full or not.
  const { store: s2 } = storeAt({ maxEntries: 8 });
  for (let i = 0; i < 4; i++) s2.remember('a', `x${i}`, undefined, at(1000));
  assert.throws(() => s2.remember('a', 'x4', undefined, at(1000)), NonceStoreFullError);
  for (let i = 0; i < 4; i++) assert.equal(s2.remember('a', `x${i}`, undefined, at(1000)), false);
  // Once they expire, they make room.
  clock.now = T0 + 10_000 + 64;
  assert.equal(store.remember('key0', 'fresh', undefined, at(20_000)), true);
});

test('one key holds at most half; a key that holds none still gets in', () => {
  const { store } = storeAt({ maxEntries: 100 });
  const fill = (keyId) => {
    let n = 0;
    for (;;) {
      try {
        store.remember(keyId, `${keyId}-${n}`, undefined, at(60_000));
      } catch (err) {
        if (err instanceof NonceStoreFullError) return n;
        throw err;
      }
      n++;
    }
  };
  assert.equal(fill('busy'), 50);
  assert.equal(fill('second'), 25);
  assert.equal(fill('third'), 13);
  assert.equal(store.remember('quiet', 'q', undefined, at(60_000)), true, 'the busy keys left room');
  assert.throws(() => store.remember('busy', 'more', undefined, at(60_000)), NonceStoreFullError);
  assert.equal(store.remember('busy', 'busy-0', undefined, at(60_000)), false, 'a replay is still a replay');
});

test('a key at its share gets room again as its own entries expire', () => {
  const { store, clock } = storeAt({ maxEntries: 10 });
  for (let i = 0; i < 5; i++) store.remember('k', `old${i}`, undefined, at(100));
  assert.throws(() => store.remember('k', 'new', undefined, at(1000)), NonceStoreFullError);
  clock.now = T0 + 101;
  for (let i = 0; i < 5; i++) assert.equal(store.remember('k', `new${i}`, undefined, at(1000)), true, `new${i}`);
  assert.equal(store.size, 5);
});

test('expired entries are dropped as the store is used, not only when it is full', () => {
  const { store, clock } = storeAt({ maxEntries: 1 << 12 });
  for (let i = 0; i < 1000; i++) store.remember(`k${i % 10}`, `n${i}`, undefined, at(1000));
  assert.equal(store.size, 1000);
  clock.now = T0 + 2000;
  for (let i = 0; i < 300; i++) store.remember('k', `later${i}`, undefined, at(100_000));
  assert.equal(store.size, 300, 'four expired entries dropped per call');
});

test('bounded under a random load, and consistent with a reference', () => {
  const max = 256;
  const { store, clock } = storeAt({ maxEntries: max });
  const reference = new Map();
  let seed = 42;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 20_000; i++) {
    clock.now += rand(20);
    const keyId = `k${rand(5)}`;
    const nonce = `n${rand(400)}`;
    const until = clock.now + rand(3000);
    const pair = `${keyId}/${nonce}`;
    const live = reference.has(pair) && reference.get(pair) >= clock.now;
    let got;
    try {
      got = store.remember(keyId, nonce, undefined, new Date(until));
    } catch (err) {
      assert.ok(err instanceof NonceStoreFullError);
      assert.ok(!live, 'a live pair is a replay, never "full"');
      continue;
    }
    assert.equal(got, !live, `step ${i}: ${pair}`);
    if (!live && until >= clock.now) reference.set(pair, until);
    assert.ok(store.size <= max);
  }
});

test('options and arguments are checked', () => {
  assert.throws(() => new MemoryNonceStore({ maxEntries: 1 }), TypeError);
  assert.throws(() => new MemoryNonceStore({ maxEntries: 2.5 }), TypeError);
  assert.throws(() => new MemoryNonceStore({ now: 5 }), TypeError);
  const store = new MemoryNonceStore();
  assert.throws(() => store.remember('k', 'n', undefined, 12), TypeError);
  assert.throws(() => store.remember('k', 'n', undefined, new Date(NaN)), TypeError);
  assert.throws(() => store.remember('k', 1, undefined, new Date()), TypeError);
  assert.throws(() => store.remember('k', 'x'.repeat(257), undefined, new Date(Date.now() + 1000)), RangeError);
  assert.throws(() => store.remember('x'.repeat(257), 'n', undefined, new Date(Date.now() + 1000)), RangeError);
  assert.equal(store.remember('k', 'x'.repeat(256), undefined, new Date(Date.now() + 1000)), true);
  const clock = new MemoryNonceStore({ now: () => new Date(T0) });
  assert.equal(clock.remember('k', 'n', undefined, at(0)), true);
  assert.equal(clock.remember('k', 'n', undefined, at(0)), false, 'a clock may return a Date');
});
