// RFC 8941 structured fields: strict parsing, canonical serialization, and
// parse → serialize → parse agreement on generated and mutated inputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sf } from '../index.js';

const { parseDictionary, parseList, parseItem, serializeDictionary, serializeList, serializeItem, Token, Decimal } = sf;

test('valid values re-serialize canonically', () => {
  const cases = [
    ['item', '42', '42'],
    ['item', '-0', '0'],
    ['item', '999999999999999', '999999999999999'],
    ['item', '4.50', '4.5'],
    ['item', '-1.000', '-1.0'],
    ['item', '123456789012.123', '123456789012.123'],
    ['item', '"a \\"quoted\\" \\\\ string"', '"a \\"quoted\\" \\\\ string"'],
    ['item', 'foo123/456:x', 'foo123/456:x'],
    ['item', '*tok', '*tok'],
    ['item', ':cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:', ':cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:'],
    ['item', ':aGk:', ':aGk=:'],
    ['item', '?1', '?1'],
    ['item', '?0;a;b=?0', '?0;a;b=?0'],
    ['item', '  1;a=1  ', '1;a=1'],
    ['item', '1; a=1', '1;a=1'],
    ['list', 'sugar, tea, rum', 'sugar, tea, rum'],
    ['list', '("foo" "bar");lvl=5, ("baz");lvl=1', '("foo" "bar");lvl=5, ("baz");lvl=1'],
    ['list', '(  1   2 ), ()', '(1 2), ()'],
    ['list', 'a\t,\tb', 'a, b'],
    ['list', '', ''],
    ['dictionary', 'en="Applepie", da=:w4ZibGV0w6ZydGU=:', 'en="Applepie", da=:w4ZibGV0w6ZydGU=:'],
    ['dictionary', 'a=?0, b, c; foo=bar', 'a=?0, b, c;foo=bar'],
    ['dictionary', 'a=1,    b=2;x=1;y=2,   c=(a   b   c)', 'a=1, b=2;x=1;y=2, c=(a b c)'],
    ['dictionary', 'a=1, a=2', 'a=2'],
    ['dictionary', 'a=1, b=2, a=3', 'a=3, b=2'],
    ['dictionary', 'a=1;x=1;x=2', 'a=1;x=2'],
  ];
  for (const [type, input, want] of cases) {
    assert.equal(sf.serialize(sf.parse(input, type), type), want, `${type} ${JSON.stringify(input)}`);
  }
});

test('invalid values are SyntaxErrors', () => {
  const cases = [
    ['item', ''],
    ['item', '1 2'],
    ['item', '1\t'],
    ['item', '\t1'],
    ['item', '1000000000000000'],
    ['item', '-'],
    ['item', '1.'],
    ['item', '1.2345'],
    ['item', '1234567890123.1'],
    ['item', '"unterminated'],
    ['item', '"bad \\a escape"'],
    ['item', '"tab\tinside"'],
    ['item', '"é"'],
    ['item', 'é'],
    ['item', '?2'],
    ['item', '?'],
    [':item', ':abc'],
    ['item', ':ab!c:'],
    ['item', ':a=bc:'],
    ['item', ':abcde:'],
    ['item', ':RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg==:'],
    ['item', '1;A=1'],
    ['item', '1;=1'],
    ['item', '#x'],
    ['item', '(1 2'],
    ['list', 'a,'],
    ['list', ',a'],
    ['list', 'a,,b'],
    ['list', '(1\t2)'],
    ['list', '(1 2)x'],
    ['dictionary', 'A=1'],
    ['dictionary', 'a=1,'],
    ['dictionary', 'a =1'],
    ['dictionary', '1=a'],
    ['dictionary', 'a=1 b=2'],
    ['dictionary', 'a=(1 2'],
    ['dictionary', 'a=1;'],
  ];
  for (const [type, input] of cases) {
    const t = type.replace(':', '');
    assert.throws(() => sf.parse(input, t), SyntaxError, `${t} ${JSON.stringify(input)}`);
  }
});

test('rejectDuplicates refuses repeated keys and parameters', () => {
  assert.throws(() => parseDictionary('a=1, a=2', { rejectDuplicates: true }), /duplicate key "a"/);
  assert.throws(() => parseDictionary('a=1;x;x', { rejectDuplicates: true }), /duplicate key "x"/);
  assert.throws(() => parseDictionary('a=(1;x;x)', { rejectDuplicates: true }), /duplicate key "x"/);
  assert.doesNotThrow(() => parseDictionary('a=1;x, b=1;x', { rejectDuplicates: true }));
});

test('typed values', () => {
  const d = parseDictionary('i=1, d=1.0, s="x", t=tok, b=:AQI=:, f=?0, l=(1 2);p');
  assert.equal(d.get('i').value, 1);
  assert.ok(d.get('d').value instanceof Decimal);
  assert.equal(d.get('d').value.value, 1);
  assert.equal(d.get('s').value, 'x');
  assert.ok(d.get('t').value instanceof Token);
  assert.deepEqual([...d.get('b').value], [1, 2]);
  assert.equal(d.get('f').value, false);
  assert.ok(Array.isArray(d.get('l').value));
  assert.equal(d.get('l').params.get('p'), true);
});

test('serialization of values built by hand', () => {
  assert.equal(serializeItem({ value: new Decimal(2) }), '2.0');
  assert.equal(serializeItem({ value: 1.5 }), '1.5');
  assert.equal(serializeItem({ value: -0.25 }), '-0.25');
  assert.equal(serializeItem({ value: 0.0005 }), '0.0');
  assert.equal(serializeItem({ value: 0.0015 }), '0.002');
  assert.equal(serializeItem({ value: new Token('a:b/c') }), 'a:b/c');
  assert.equal(serializeList([{ value: 'x', params: new Map([['a', true], ['b', 2]]) }]), '"x";a;b=2');
  assert.equal(serializeDictionary(new Map([['a', { value: true, params: new Map([['p', 1]]) }], ['b', { value: false }]])), 'a;p=1, b=?0');
  assert.throws(() => serializeItem({ value: 1e15 }), TypeError);
  assert.throws(() => serializeItem({ value: 1e12 + 0.5 }), TypeError);
  assert.throws(() => serializeItem({ value: 'tab\t' }), TypeError);
  assert.throws(() => serializeItem({ value: new Token('1abc') }), TypeError);
  assert.throws(() => serializeDictionary(new Map([['A', { value: 1 }]])), TypeError);
  assert.throws(() => serializeItem({ value: {} }), TypeError);
});

// A small deterministic PRNG so that failures reproduce.
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

function generator(rand) {
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const key = () => pick(['a', 'b', 'key', '*k', 'x-y', 'z.1', 'sig1']);
  const bare = () => {
    switch (Math.floor(rand() * 7)) {
      case 0: return Math.floor((rand() - 0.5) * 2e6);
      case 1: return new Decimal(Math.round((rand() - 0.5) * 2e6) / 1000);
      case 2: return pick(['', 'hello', 'quo"te', 'back\\slash', ' sp ']);
      case 3: return new Token(pick(['tok', 'a/b', 'x:y', '*', 'T1']));
      case 4: return new Uint8Array([...Array(Math.floor(rand() * 6))].map(() => Math.floor(rand() * 256)));
      default: return rand() < 0.5;
    }
  };
  const params = () => new Map([...Array(Math.floor(rand() * 3))].map(() => [key(), bare()]));
  const item = () => ({ value: bare(), params: params() });
  const member = () => (rand() < 0.3 ? { value: [...Array(Math.floor(rand() * 3))].map(item), params: params() } : item());
  return {
    list: () => [...Array(Math.floor(rand() * 4))].map(member),
    dictionary: () => new Map([...Array(Math.floor(rand() * 4))].map(() => [key(), member()])),
    item,
  };
}

test('generated values: serialize → parse → serialize is stable', () => {
  const rand = prng(8941);
  const gen = generator(rand);
  for (let i = 0; i < 2000; i++) {
    for (const type of ['list', 'dictionary', 'item']) {
      const text = sf.serialize(gen[type](), type);
      const again = sf.serialize(sf.parse(text, type), type);
      assert.equal(again, text, `${type} ${text}`);
    }
  }
});

test('mutated inputs: parse either fails with SyntaxError or round-trips', () => {
  const rand = prng(20240613);
  const seeds = [
    'sig1=("@method" "@authority" "@path");created=1700000000;keyid="k";alg="hmac-sha256";nonce="n"',
    'a=1, b=2;x=1;y=2, c=(a b c), d',
    'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
    '("foo" "bar");lvl=5, ("baz");lvl=1, 4.5, ?0',
  ];
  const alphabet = ' \t,;=()"\\:?*-._/aZ09@%é\x00\x7f';
  for (let i = 0; i < 5000; i++) {
    let s = seeds[i % seeds.length];
    const edits = 1 + Math.floor(rand() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * (s.length + 1));
      const ch = alphabet[Math.floor(rand() * alphabet.length)];
      const op = rand();
      if (op < 0.4) s = s.slice(0, at) + ch + s.slice(at);
      else if (op < 0.8) s = s.slice(0, at) + s.slice(at + 1);
      else s = s.slice(0, at) + ch + s.slice(at + 1);
    }
    for (const type of ['list', 'dictionary', 'item']) {
      let parsed;
      try {
        parsed = sf.parse(s, type);
      } catch (err) {
        assert.ok(err instanceof SyntaxError, `${type} ${JSON.stringify(s)}: ${err}`);
        continue;
      }
      const text = sf.serialize(parsed, type);
      assert.equal(sf.serialize(sf.parse(text, type), type), text, `${type} ${JSON.stringify(s)}`);
    }
  }
});

test('parseList and parseItem are exported', () => {
  assert.equal(parseList('1, 2').length, 2);
  assert.equal(parseItem('"x"').value, 'x');
});
