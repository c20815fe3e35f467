"""Signing and verifying: the default profile byte for byte, the policy,
tampering with every covered part (each refused for its reason, the Go
package's reason), malformed fields, keys, replays and the nonce store."""

from __future__ import annotations

import threading
from typing import Callable, List, Optional, Tuple

import pytest

import signet
from signet import Reason

from conftest import RFC9421, load_json

NOW = 1700000000
REF_URL = "https://api.example.com/v1/orders?customer=42&expand=items"
BODY = b'{"item":"book","qty":2}'
SECRET = signet.hmac_key(b"k" * 32)


def clock(t: float = NOW) -> Callable[[], float]:
    return lambda: t


def reference(body: bytes = BODY, **headers: str) -> signet.Request:
    h = [("Content-Type", "application/json")] + list(headers.items())
    return signet.Request("POST", REF_URL, h, body)


def signer(**kw: object) -> signet.Signer:
    kw.setdefault("key_id", "key-1")
    kw.setdefault("key", SECRET)
    kw.setdefault("now", clock())
    return signet.Signer(**kw)  # type: ignore[arg-type]


def verifier(keys: Optional[dict] = None, nonces: Optional[signet.NonceStore] = None, **kw: object) -> signet.Verifier:
    return signet.Verifier(
        keys if keys is not None else {"key-1": SECRET},
        nonces=nonces if nonces is not None else signet.MemoryNonceStore(now=clock()),
        now=kw.pop("now", clock()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def received(req: signet.Request, signed: signet.Signed, *, method: Optional[str] = None, target: Optional[str] = None,
             body: Optional[bytes] = None, edit: Optional[Callable[[List[Tuple[str, str]]], List[Tuple[str, str]]]] = None) -> signet.Request:
    """The signed request as a server receives it (origin-form, Host), altered as asked."""
    fields = [(n, v) for n, lines in req.fields.items() for v in lines if n not in {k.lower() for k in signed.headers}]
    fields += list(signed.headers.items())
    fields.append(("Host", req.host or ""))
    if edit:
        fields = edit(fields)
    return signet.Request(method or req.method, target or req.target, fields, req.body if body is None else body, scheme=req.scheme)


def set_field(name: str, value: Optional[str]) -> Callable[[List[Tuple[str, str]]], List[Tuple[str, str]]]:
    def edit(fields: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
        out = [(n, v) for n, v in fields if n.lower() != name.lower()]
        return out if value is None else out + [(name, value)]
    return edit


def replace_in(name: str, old: str, new: str) -> Callable[[List[Tuple[str, str]]], List[Tuple[str, str]]]:
    def edit(fields: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
        return [(n, v.replace(old, new, 1) if n.lower() == name.lower() else v) for n, v in fields]
    return edit


def reason_of(v: signet.Verifier, msg: signet.Message) -> Optional[str]:
    try:
        v.verify(msg)
    except signet.VerifyError as e:
        return e.reason.value
    return None


def test_reference_request_byte_for_byte() -> None:
    key = signet.load_key_file(RFC9421 / "keys" / "test-shared-secret.b64")
    out = signer(key_id="sk_test_abc", key=key).sign(reference(), nonce="q3v0b0m5c2g3d2x1ZmZ4cA")
    assert out.headers["Signature-Input"] == (
        'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");'
        'created=1700000000;keyid="sk_test_abc";alg="hmac-sha256";nonce="q3v0b0m5c2g3d2x1ZmZ4cA"'
    )
    assert out.base == (
        '"@method": POST\n"@authority": api.example.com\n"@path": /v1/orders\n"@query": ?customer=42&expand=items\n'
        '"content-type": application/json\n"content-digest": sha-256=:' + signet.content_digest(BODY)[9:] + "\n"
        '"@signature-params": ' + out.signature_params
    )
    assert list(out.headers) == ["Content-Digest", "Signature-Input", "Signature"]


@pytest.mark.parametrize(
    "method,url,headers,body,want",
    [
        ("GET", "https://a.example/x", {}, b"", '("@method" "@authority" "@path")'),
        ("GET", "https://a.example/x?", {}, b"", '("@method" "@authority" "@path")'),
        ("GET", "https://a.example/x?q=1", {}, b"", '("@method" "@authority" "@path" "@query")'),
        ("POST", "https://a.example/", {"content-type": "text/plain"}, b"", '("@method" "@authority" "@path" "content-type")'),
        ("POST", "https://a.example/", {}, b"x", '("@method" "@authority" "@path" "content-digest")'),
        ("PUT", "https://a.example/", {"Content-Digest": "sha-256=:AAAA:"}, b"", '("@method" "@authority" "@path" "content-digest")'),
    ],
)
def test_default_profile(method: str, url: str, headers: dict, body: bytes, want: str) -> None:
    out = signer(nonce=False).sign(signet.Request(method, url, headers, body))
    assert out.signature_params.startswith(want + ";created=1700000000;keyid=\"key-1\";alg=\"hmac-sha256\"")


def test_parameter_order_and_options() -> None:
    out = signer(tag="app-1", expires_in=60, label="mine").sign(signet.Request("GET", "https://a.example/"), nonce="n")
    assert out.signature_params == '("@method" "@authority" "@path");created=1700000000;keyid="key-1";alg="hmac-sha256";nonce="n";expires=1700000060;tag="app-1"'
    assert out.headers["Signature"].startswith("mine=:")
    out = signer(include_alg=False, nonce=False).sign(signet.Request("GET", "https://a.example/"))
    assert out.signature_params.endswith(';created=1700000000;keyid="key-1"')
    assert len(signet.new_nonce()) == 22


def test_every_algorithm_round_trips() -> None:
    for alg in signet.ALGORITHMS:
        if alg == "hmac-sha256":
            key, public = SECRET, SECRET
        elif alg.startswith("rsa"):
            # The RFC's 2048-bit keys: generating one takes a while.
            k = load_json(RFC9421 / "keys" / "index.json")["test-key-rsa-pss" if "pss" in alg else "test-key-rsa"]
            key, public = signet.load_key(k["private_pem"], alg), signet.load_key(k["public_pem"], alg)
        else:
            private_pem, public_pem = signet.generate_key_pair(alg)
            key, public = signet.load_key(private_pem, alg), signet.load_key(public_pem, alg)
        out = signer(key=key).sign(reference())
        v = verifier({"key-1": public})
        v.verify(received(reference(), out))
        assert reason_of(v, received(reference(), out, method="PUT")) == "bad-signature", alg


TAMPERS = [
    ("method", dict(method="PUT"), "bad-signature"),
    ("method case", dict(method="post"), "bad-signature"),
    ("authority", dict(edit=set_field("Host", "evil.example.com")), "bad-signature"),
    ("authority port", dict(edit=set_field("Host", "api.example.com:8443")), "bad-signature"),
    ("path", dict(target="/v1/refunds?customer=42&expand=items"), "bad-signature"),
    ("path encoding", dict(target="/v1/%6Frders?customer=42&expand=items"), "bad-signature"),
    ("query", dict(target="/v1/orders?customer=43&expand=items"), "bad-signature"),
    ("query dropped", dict(target="/v1/orders"), "bad-signature"),
    ("content-type", dict(edit=set_field("Content-Type", "text/plain")), "bad-signature"),
    ("content-type removed", dict(edit=set_field("Content-Type", None)), "missing-component"),
    ("content-digest", dict(edit=set_field("Content-Digest", signet.content_digest(b"other"))), "bad-signature"),
    ("body", dict(body=b'{"item":"book","qty":9}'), "digest-mismatch"),
    ("body removed", dict(body=b""), "digest-mismatch"),
    ("created", dict(edit=replace_in("Signature-Input", "created=1700000000", "created=1700000001")), "bad-signature"),
    ("component dropped", dict(edit=replace_in("Signature-Input", ' "content-type"', "")), "missing-component"),
    ("nonce dropped", dict(edit=replace_in("Signature-Input", ";nonce=", ";x=")), "malformed-signature"),
    ("alg changed", dict(edit=replace_in("Signature-Input", 'alg="hmac-sha256"', 'alg="ed25519"')), "algorithm-mismatch"),
    ("alg emptied", dict(edit=replace_in("Signature-Input", 'alg="hmac-sha256"', 'alg=""')), "algorithm-mismatch"),
    ("unknown alg", dict(edit=replace_in("Signature-Input", 'alg="hmac-sha256"', 'alg="hmac-md5"')), "algorithm-mismatch"),
    ("keyid changed", dict(edit=replace_in("Signature-Input", 'keyid="key-1"', 'keyid="key-2"')), "unknown-key"),
    ("keyid emptied", dict(edit=replace_in("Signature-Input", 'keyid="key-1"', 'keyid=""')), "malformed-signature"),
    ("signature bit", dict(edit=replace_in("Signature", "sig1=:", "sig1=:A")), "malformed-signature"),
    ("signature removed", dict(edit=set_field("Signature", None)), "malformed-signature"),
    ("input removed", dict(edit=set_field("Signature-Input", None)), "malformed-signature"),
    ("both removed", dict(edit=lambda f: [x for x in f if not x[0].lower().startswith("signature")]), "missing-signature"),
    ("label renamed", dict(edit=replace_in("Signature", "sig1=", "sig2=")), "malformed-signature"),
]


@pytest.mark.parametrize("name,change,want", TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tampered(name: str, change: dict, want: str) -> None:
    out = signer().sign(reference())
    v = verifier()
    assert reason_of(v, received(reference(), out, **change)) == want
    # The genuine request still passes: nothing was spent by the refusal.
    v.verify(received(reference(), out))


def test_signature_value_changed() -> None:
    out = signer().sign(reference())
    sig = out.headers["Signature"]
    i = sig.index(":") + 1
    changed = sig[:i] + ("B" if sig[i] == "A" else "A") + sig[i + 1:]
    assert reason_of(verifier(), received(reference(), out, edit=set_field("Signature", changed))) == "bad-signature"


POLICY = [
    ("fresh", {}, {}, 0, None),
    ("at max age", {}, {}, 300, None),
    ("too old", {}, {}, 301, "expired"),
    ("custom max age", {}, {"max_age": 60}, 61, "expired"),
    ("no max age", {}, {"max_age": None}, 86400, None),
    ("within skew", {}, {}, -30, None),
    ("future", {}, {}, -31, "not-yet-valid"),
    ("custom skew", {}, {"max_skew": 5}, -6, "not-yet-valid"),
    ("expires passed", {"expires_in": 10}, {}, 10, "expired"),
    ("expires ahead", {"expires_in": 10}, {}, 9, None),
    ("nonce required", {"nonce": False}, {}, 0, "malformed-signature"),
    ("expires required", {}, {"required_params": ("expires",)}, 0, "malformed-signature"),
    ("no alg parameter", {"include_alg": False}, {}, 0, None),
    ("algorithm not accepted", {}, {"algorithms": ["ed25519"]}, 0, "algorithm-mismatch"),
    ("tag matches", {"tag": "app"}, {"tag": "app"}, 0, None),
    ("tag differs", {"tag": "other"}, {"tag": "app"}, 0, "missing-signature"),
    ("tag missing", {}, {"tag": "app"}, 0, "missing-signature"),
    ("label present", {"label": "mine"}, {"labels": ["mine"]}, 0, None),
    ("label absent", {}, {"labels": ["mine"]}, 0, "missing-signature"),
    ("required component not covered", {"components": ["@method", "@authority", "@path"]}, {}, 0, "missing-component"),
    ("explicit requirement met", {"components": ["@method", "@target-uri"]}, {"required_components": ["@target-uri"], "required_params": ()}, 0, None),
]


@pytest.mark.parametrize("name,sign_kw,policy_kw,at,want", POLICY, ids=[p[0] for p in POLICY])
def test_policy(name: str, sign_kw: dict, policy_kw: dict, at: int, want: Optional[str]) -> None:
    out = signer(**sign_kw).sign(reference())
    v = verifier(policy=signet.Policy(**policy_kw), now=clock(NOW + at))
    assert reason_of(v, received(reference(), out)) == want


def test_nonce_store_is_required() -> None:
    with pytest.raises(ValueError, match="nonce store"):
        signet.Verifier({"key-1": SECRET})
    # An explicit policy without nonces needs none.
    v = signet.Verifier({"key-1": SECRET}, policy=signet.Policy(required_params=("created", "keyid")), now=clock())
    v.verify(received(reference(), signer(nonce=False).sign(reference())))


def test_unsigned_content_is_refused() -> None:
    req = signet.Request("POST", REF_URL)
    out = signer().sign(req)
    verifier().verify(received(req, out))
    assert reason_of(verifier(), received(req, out, body=b"smuggled")) == "missing-component"


def test_key_resolution() -> None:
    out = signer().sign(reference())
    msg = received(reference(), out)
    for raised, want in [(Reason.KEY_REVOKED, "key-revoked"), (Reason.KEY_EXPIRED, "key-expired")]:
        def resolve(key_id: str, r: Reason = raised) -> signet.Key:
            raise signet.VerifyError(r, "told by the store")
        try:
            verifier(resolve).verify(msg)  # type: ignore[arg-type]
        except signet.VerifyError as e:
            assert e.reason == want and e.label == "sig1"
    assert reason_of(verifier(lambda k: None), msg) == "unknown-key"  # type: ignore[arg-type]

    class Down(Exception):
        pass

    def down(key_id: str) -> signet.Key:
        raise Down("database is down")
    with pytest.raises(Down):  # fail closed: not a refusal with a reason
        verifier(down).verify(msg)  # type: ignore[arg-type]
    private_pem, public_pem = signet.generate_key_pair("ed25519")
    assert reason_of(verifier({"key-1": signet.load_key(public_pem)}), msg) == "algorithm-mismatch"
    # Key material in a mapping is read as a key file.
    verifier({"key-1": signet.generate_secret()})
    assert reason_of(verifier({"key-1": signet.generate_secret()}), msg) == "bad-signature"  # type: ignore[dict-item]


def test_replay_and_nonce_lifetime() -> None:
    class Recording:
        def __init__(self) -> None:
            self.seen: dict = {}
            self.fail: Optional[Exception] = None

        def remember(self, key_id: str, nonce: str, created: Optional[int], until: float) -> bool:
            if self.fail:
                raise self.fail
            if (key_id, nonce) in self.seen:
                return False
            self.seen[(key_id, nonce)] = (created, until)
            return True

    store = Recording()
    v = verifier(nonces=store)
    out = signer().sign(reference(), nonce="n1")
    v.verify(received(reference(), out))
    assert reason_of(v, received(reference(), out)) == "replayed"
    # A request passes the age check until created + 300 s inclusive, in
    # whole seconds: its nonce is held past the last moment it could pass.
    assert store.seen[("key-1", "n1")] == (NOW, NOW + 301)
    # A refused request spends no nonce.
    out2 = signer().sign(reference())
    assert reason_of(v, received(reference(), out2, body=b"tampered")) == "digest-mismatch"
    v.verify(received(reference(), out2))
    # A store that cannot answer fails closed, without a reason code.
    store.fail = ConnectionError("redis: connection refused")
    with pytest.raises(ConnectionError):
        v.verify(received(reference(), signer().sign(reference())))
    # expires bounds the nonce's life when it is sooner.
    store.fail = None
    v.verify(received(reference(), signer(expires_in=10).sign(reference(), nonce="n3")))
    assert store.seen[("key-1", "n3")] == (NOW, NOW + 10)


def test_replay_at_the_edge_of_the_window() -> None:
    t = [float(NOW)]
    store = signet.MemoryNonceStore(now=lambda: t[0])
    v = verifier(nonces=store, now=lambda: t[0])
    msg = received(reference(), signer().sign(reference()))
    v.verify(msg)
    for at in (1, 150, 300, 300.5, 300.999):
        t[0] = NOW + at
        assert reason_of(v, msg) == "replayed", at
    t[0] = NOW + 301
    assert reason_of(v, msg) == "expired"


def test_memory_nonce_store_bounds() -> None:
    t = [100.0]
    store = signet.MemoryNonceStore(max_entries=8, max_per_key=3, now=lambda: t[0])
    for i in range(3):
        assert store.remember("a", f"n{i}", None, 110)
    with pytest.raises(signet.NonceStoreFull):
        store.remember("a", "n3", None, 110)  # one key may not fill the store
    assert not store.remember("a", "n0", None, 110)  # seen before: a replay, not "full"
    for i in range(5):
        assert store.remember("b" if i < 3 else "c", f"n{i}", None, 110 + i)
    with pytest.raises(signet.NonceStoreFull):
        store.remember("d", "x", None, 110)
    assert len(store) == 8
    assert store.remember("d", "old", None, 99)  # already expired: nothing to hold
    t[0] = 110.5  # entries until 110 have expired and make room
    assert store.remember("d", "x", None, 120)
    assert store.remember("a", "n0", None, 120)
    assert len(store) == 6  # b n0 and the three of a went; b n1, b n2, c n3, c n4 stay


def test_memory_nonce_store_concurrent() -> None:
    store = signet.MemoryNonceStore()
    wins: List[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(200):
            ok = store.remember("k", f"n{i}", None, 2**40)
            with lock:
                wins.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins.count(True) == 200


def test_multiple_signatures() -> None:
    other = signet.hmac_key(b"o" * 32)
    out = signer().sign(reference())
    msg = received(reference(), out)
    second = signer(key=other, label="sig2").sign(msg)
    both = received(reference(), out, edit=lambda f: [x for x in f if x[0] not in second.headers] + list(second.headers.items()))
    assert reason_of(verifier(), both) == "bad-signature"
    verifier(policy=signet.Policy(labels=["sig1"])).verify(both)
    with pytest.raises(ValueError, match="already has a signature"):
        signer().sign(both)


MALFORMED = [
    ("not a dictionary", "garbage(", "sig1=:AAAA:"),
    ("label mismatch", 'sig1=("@method");created=1700000000;keyid="key-1";nonce="n"', "sig2=:AAAA:"),
    ("signature not bytes", 'sig1=("@method");created=1700000000;keyid="key-1";nonce="n"', 'sig1="AAAA"'),
    ("signature not base64", 'sig1=("@method");created=1700000000;keyid="key-1";nonce="n"', "sig1=:AA*A:"),
    ("input not inner list", 'sig1="x"', "sig1=:AAAA:"),
    ("component not string", "sig1=(method);created=1", "sig1=:AAAA:"),
    ("unknown derived", 'sig1=("@nope");created=1', "sig1=:AAAA:"),
    ("uppercase field", 'sig1=("Content-Type");created=1', "sig1=:AAAA:"),
    ("signature-params covered", 'sig1=("@signature-params");created=1', "sig1=:AAAA:"),
    ("unknown component param", 'sig1=("date";foo);created=1', "sig1=:AAAA:"),
    ("bs with sf", 'sig1=("date";bs;sf);created=1', "sig1=:AAAA:"),
    ("duplicate component", 'sig1=("date" "date");created=1', "sig1=:AAAA:"),
    ("duplicate component reordered params", 'sig1=("x";sf;req "x";req;sf);created=1', "sig1=:AAAA:"),
    ("created not integer", 'sig1=("@method");created="1"', "sig1=:AAAA:"),
    ("created decimal", 'sig1=("@method");created=1.5', "sig1=:AAAA:"),
    ("created boolean", 'sig1=("@method");created', "sig1=:AAAA:"),
    ("created negative", 'sig1=("@method");created=-1', "sig1=:AAAA:"),
    ("keyid not string", 'sig1=("@method");keyid=k', "sig1=:AAAA:"),
    ("duplicate label", 'sig1=("@method");created=1700000000;keyid="key-1";nonce="n", sig1=("@method");created=1700000000;keyid="key-1";nonce="n"', "sig1=:AAAA:"),
    ("duplicate param", 'sig1=("@method");created=1;created=2', "sig1=:AAAA:"),
    ("query-param without name", 'sig1=("@query-param");created=1', "sig1=:AAAA:"),
    ("status in request", 'sig1=("@method" "@authority" "@path" "@status");created=1700000000;keyid="key-1";nonce="n"', "sig1=:AAAA:"),
    ("req in request", 'sig1=("@method" "@authority" "@path" "@method";req);created=1700000000;keyid="key-1";nonce="n"', "sig1=:AAAA:"),
    ("line break in a value", 'sig1=("@method" "@authority" "@path" "x-evil");created=1700000000;keyid="key-1";nonce="n"', "sig1=:AAAA:"),
    ("non-ASCII host", 'sig1=("@method" "@authority" "@path");created=1700000000;keyid="key-1";nonce="n"', "sig1=:AAAA:"),
]


@pytest.mark.parametrize("name,signature_input,signature", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_fields(name: str, signature_input: str, signature: str) -> None:
    host = "bücher.example".encode() if name == "non-ASCII host" else "api.example.com"
    msg = signet.Request("GET", "/", [("Host", host), ("X-Evil", "a\n\"@method\": GET"), ("Signature-Input", signature_input), ("Signature", signature)])
    assert reason_of(verifier(), msg) == "malformed-signature"


def test_too_many_signatures_and_empty_input() -> None:
    labels = ["s" + "x" * i for i in range(signet.MAX_SIGNATURES + 1)]
    msg = signet.Request("GET", "https://api.example.com/", [
        ("Signature-Input", ", ".join(f'{l}=("@method");created=1700000000;keyid="key-1";nonce="n"' for l in labels)),
        ("Signature", ", ".join(f"{l}=:AAAA:" for l in labels)),
    ])
    assert reason_of(verifier(), msg) == "malformed-signature"
    msg = signet.Request("GET", "https://api.example.com/", [("Signature-Input", " "), ("Signature", "a")])
    assert reason_of(verifier(), msg) == "missing-signature"


def test_debug_base() -> None:
    out = signer().sign(reference())
    v = verifier(debug=True)
    assert v.verify(received(reference(), out)).base == out.base
    with pytest.raises(signet.VerifyError) as e:
        v.verify(received(reference(), out, method="PUT"))
    assert e.value.base is not None and e.value.base.startswith('"@method": PUT\n')
    with pytest.raises(signet.VerifyError) as e:
        verifier().verify(received(reference(), out, method="PUT"))
    assert e.value.base is None
    assert "bad-signature (sig1)" in str(e.value)


@pytest.mark.parametrize(
    "query,name,want",
    [
        ("a=1&b=2", "b", '"@query-param";name="b": 2'),
        ("a=1&a=2", "a", '"@query-param";name="a": 1\n"@query-param";name="a": 2'),
        ("q=a+b%20c", "q", '"@query-param";name="q": a%20b%20c'),
        ("q=%7E%2a", "q", '"@query-param";name="q": %7E*'),
        ("q=%zz", "q", '"@query-param";name="q": %25zz'),
        ("q=%E2%82", "q", '"@query-param";name="q": %EF%BF%BD'),
        ("q=%E2%82A", "q", '"@query-param";name="q": %EF%BF%BDA'),
        ("q=%FF%FE", "q", '"@query-param";name="q": %EF%BF%BD%EF%BF%BD'),
        ("q=%ED%A0%80", "q", '"@query-param";name="q": %EF%BF%BD%EF%BF%BD%EF%BF%BD'),
        ("q", "q", '"@query-param";name="q": '),
        ("caf%C3%A9=1", "caf%C3%A9", '"@query-param";name="caf%C3%A9": 1'),
        ("&&q=1&", "q", '"@query-param";name="q": 1'),
    ],
)
def test_query_param(query: str, name: str, want: str) -> None:
    msg = signet.Request("GET", f"https://example.com/p?{query}")
    base = signet.signature_base(msg, f'("@query-param";name="{name}")')
    assert base.rsplit("\n", 1)[0] == want


def test_query_param_absent() -> None:
    with pytest.raises(signet.ComponentError) as e:
        signet.signature_base(signet.Request("GET", "https://example.com/p?a=1"), '("@query-param";name="b")')
    assert e.value.absent


@pytest.mark.parametrize(
    "host,scheme,want",
    [
        ("example.com:0080", "http", "example.com"),
        ("example.com:0443", "https", "example.com"),
        ("example.com:", "https", "example.com"),
        ("example.com:80", "https", "example.com:80"),
        ("127.0.0.1:08080", "http", "127.0.0.1:8080"),
        ("[fe80::1%25eth0]:8080", "http", "[fe80::1]:8080"),
        ("[::1]", "https", "[::1]"),
        ("[::1]:80", "http", "[::1]"),
        ("EXAMPLE.com:443", "https", "example.com"),
    ],
)
def test_authority(host: str, scheme: str, want: str) -> None:
    msg = signet.Request("GET", "/", {"Host": host}, scheme=scheme)
    assert signet.signature_base(msg, '("@authority")').split("\n")[0] == f'"@authority": {want}'


def test_authority_non_ascii_and_userinfo() -> None:
    with pytest.raises(signet.ComponentError, match="punycode"):
        signet.signature_base(signet.Request("GET", "/", {"Host": "bücher.example".encode()}), '("@authority")')
    msg = signet.Request("GET", "https://user:pw@Example.com:443/x")
    assert signet.signature_base(msg, '("@authority" "@target-uri")').split("\n")[:2] == [
        '"@authority": example.com', '"@target-uri": https://example.com/x']


def test_field_values() -> None:
    msg = signet.Request("GET", "https://e.example/", [
        ("X-Folded", "a\r\n  b"), ("X-Multi", " one "), ("x-multi", "two"), ("X-Bytes", "café".encode()), ("X-Latin", "caf\xe9")])
    base = signet.signature_base(msg, '("x-folded" "x-multi" "x-multi";bs "x-bytes" "x-latin")')
    assert base.split("\n")[:5] == [
        '"x-folded": a b', '"x-multi": one, two', '"x-multi";bs: :b25l:, :dHdv:', '"x-bytes": caf\xc3\xa9', '"x-latin": caf\xe9']
    for evil in ("a\n\"@method\": GET", "a\rb", "a\nb"):
        with pytest.raises(signet.ComponentError, match="line break"):
            signet.signature_base(signet.Request("GET", "https://e.example/", {"X-Evil": evil}), '("x-evil")')
    with pytest.raises(ValueError):
        signet.Request("GET", "https://e.example/", {"X-Wide": "✓"})


def test_signer_errors() -> None:
    with pytest.raises(ValueError, match="public key"):
        signer(key=signet.generate_key_pair()[1])
    with pytest.raises(ValueError, match="label"):
        signer(label="Sig")
    with pytest.raises(ValueError):
        signer(key_id="caf\xe9")
    with pytest.raises(ValueError, match="twice"):
        signer(components=["@method", '"@method"'])
    with pytest.raises(ValueError, match="digest"):
        signer(digest="md5")
    with pytest.raises(ValueError, match="no such header"):
        signer(components=["x-absent"]).sign(reference())
    with pytest.raises(signet.KeyFormatError, match="32"):
        signet.hmac_key(b"short")
