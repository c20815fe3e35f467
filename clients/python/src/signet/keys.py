"""Keys bound to one algorithm of RFC 9421 §3.3, and key files.

HMAC-SHA256 uses the standard library (:mod:`hmac`, with
:func:`hmac.compare_digest` to compare MACs); Ed25519, ECDSA and RSA use the
``cryptography`` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from typing import Any, Mapping, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

__all__ = [
    "ALGORITHMS",
    "Key",
    "KeyFormatError",
    "generate_key_pair",
    "generate_secret",
    "hmac_key",
    "load_key",
    "load_key_file",
]

ALGORITHMS = (
    "hmac-sha256",
    "ed25519",
    "ecdsa-p256-sha256",
    "ecdsa-p384-sha384",
    "rsa-pss-sha512",
    "rsa-v1_5-sha256",
)
"""The algorithms this package signs and verifies with, by their RFC 9421 names."""

# As the Go package: shorter HMAC secrets and RSA moduli are refused.
MIN_HMAC_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
# Real key files are a few KiB.
MAX_KEY_FILE_BYTES = 64 << 10

# JOSE names (RFC 7518, RFC 8037) a JWK "alg" may hold, besides RFC 9421 names.
_JWK_ALGS = {
    "HS256": "hmac-sha256",
    "EdDSA": "ed25519",
    "Ed25519": "ed25519",
    "ES256": "ecdsa-p256-sha256",
    "ES384": "ecdsa-p384-sha384",
    "PS512": "rsa-pss-sha512",
    "RS256": "rsa-v1_5-sha256",
}
_CURVES = {"ecdsa-p256-sha256": (ec.SECP256R1, hashes.SHA256, 32), "ecdsa-p384-sha384": (ec.SECP384R1, hashes.SHA384, 48)}

_PrivateKey = Union[ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
_PublicKey = Union[ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey]
Material = Union[str, bytes, Mapping[str, Any], "Key", _PrivateKey, _PublicKey]


class KeyFormatError(ValueError):
    """Key material that cannot be read, or that does not fit the algorithm.
    Its message never holds key material."""


class Key:
    """A key bound to one algorithm: an HMAC secret, or an asymmetric private
    or public key. Make one with :func:`load_key`, :func:`load_key_file` or
    :func:`hmac_key`.

    ``alg`` is its algorithm; ``kind`` is ``"secret"``, ``"private"`` or
    ``"public"``. A Key is immutable and safe to share between threads; its
    ``repr`` never shows the material.
    """

    __slots__ = ("alg", "kind", "_material")

    def __init__(self, alg: str, material: Union[bytes, _PrivateKey, _PublicKey]) -> None:
        if alg not in ALGORITHMS:
            raise KeyFormatError(f"signet: unknown algorithm {alg!r} (known: {', '.join(ALGORITHMS)})")
        _check_fits(alg, material)
        object.__setattr__(self, "alg", alg)
        kind = "secret" if isinstance(material, bytes) else "public" if _is_public(material) else "private"
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_material", material)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("signet: a Key cannot be changed")

    alg: str
    kind: str
    _material: Union[bytes, _PrivateKey, _PublicKey]

    @property
    def can_sign(self) -> bool:
        """Reports whether the key can sign (a secret or a private key)."""
        return self.kind != "public"

    def sign(self, data: bytes) -> bytes:
        """Signs data (the signature base)."""
        m = self._material
        if isinstance(m, bytes):
            return hmac.new(m, data, hashlib.sha256).digest()
        if isinstance(m, ed25519.Ed25519PrivateKey):
            return m.sign(data)
        if isinstance(m, ec.EllipticCurvePrivateKey):
            _, hash_type, size = _CURVES[self.alg]
            r, s = decode_dss_signature(m.sign(data, ec.ECDSA(hash_type())))
            # RFC 9421 §3.3.4: r‖s, each padded to the curve size, not DER.
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(m, rsa.RSAPrivateKey):
            if self.alg == "rsa-pss-sha512":
                return m.sign(data, _PSS, hashes.SHA512())
            return m.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise TypeError("signet: a public key cannot sign")

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Reports whether signature is a valid signature of data. MACs are
        compared in constant time; a signature of the wrong size is invalid."""
        m = self._material
        if isinstance(m, bytes):
            return hmac.compare_digest(hmac.new(m, data, hashlib.sha256).digest(), signature)
        pub = m.public_key() if isinstance(m, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)) else m
        try:
            if isinstance(pub, ed25519.Ed25519PublicKey):
                if len(signature) != 64:
                    return False
                pub.verify(signature, data)
            elif isinstance(pub, ec.EllipticCurvePublicKey):
                _, hash_type, size = _CURVES[self.alg]
                if len(signature) != 2 * size:
                    return False
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                pub.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_type()))
            elif isinstance(pub, rsa.RSAPublicKey):
                if self.alg == "rsa-pss-sha512":
                    pub.verify(signature, data, _PSS, hashes.SHA512())
                else:
                    pub.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                return False
        except (InvalidSignature, ValueError):
            return False
        return True

    def public_key(self) -> "Key":
        """The key that verifies this key's signatures: the public half of a
        private key, or the key itself."""
        m = self._material
        if isinstance(m, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            return Key(self.alg, m.public_key())
        return self

    def public_pem(self) -> str:
        """The public key as SPKI PEM text, as a Signet server registers it."""
        m = self._material
        if isinstance(m, bytes):
            raise TypeError("signet: an HMAC secret has no public key")
        pub = m.public_key() if isinstance(m, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)) else m
        pem: bytes = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return pem.decode("ascii")

    def __repr__(self) -> str:
        return f"Key(alg={self.alg!r}, kind={self.kind!r})"


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)


def _is_public(m: object) -> bool:
    return isinstance(m, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey))


def _describe(m: object) -> str:
    if isinstance(m, bytes):
        return "shared-secret"
    if isinstance(m, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(m, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ECDSA {m.curve.name}"
    if isinstance(m, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    return type(m).__name__


def _check_fits(alg: str, m: object) -> None:
    ok = False
    if alg == "hmac-sha256":
        if isinstance(m, bytes):
            if len(m) < MIN_HMAC_SECRET_BYTES:
                raise KeyFormatError(f"signet: hmac-sha256 secret is {len(m)} bytes, need at least {MIN_HMAC_SECRET_BYTES}")
            ok = True
    elif alg == "ed25519":
        ok = isinstance(m, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey))
    elif alg in _CURVES:
        ok = isinstance(m, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(m.curve, _CURVES[alg][0])
    elif alg in ("rsa-pss-sha512", "rsa-v1_5-sha256"):
        if isinstance(m, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            if m.key_size < MIN_RSA_BITS:
                raise KeyFormatError(f"signet: {alg} key has {m.key_size} bits, need at least {MIN_RSA_BITS}")
            ok = True
    if not ok:
        raise KeyFormatError(f"signet: a {_describe(m)} key cannot be used with algorithm {alg}")


def _infer(m: object) -> str:
    if isinstance(m, bytes):
        return "hmac-sha256"
    if isinstance(m, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(m, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for alg, (curve, _, _) in _CURVES.items():
            if isinstance(m.curve, curve):
                return alg
    raise KeyFormatError(f"signet: cannot tell the algorithm of a {_describe(m)} key; pass alg")


def hmac_key(secret: bytes) -> Key:
    """An hmac-sha256 key from the raw secret (at least 32 bytes)."""
    if not isinstance(secret, (bytes, bytearray, memoryview)):
        raise TypeError("signet: an HMAC secret must be bytes")
    return Key("hmac-sha256", bytes(secret))


def load_key(material: Material, alg: Optional[str] = None) -> Key:
    """Reads a key and binds it to one algorithm.

    ``material`` is the text of a key file (``str``, or ``bytes`` as read
    from the file): PEM (PKCS#8, SPKI, PKCS#1, SEC1), a JWK (RFC 7517) JSON
    object, or base64 text of an HMAC secret (standard or URL alphabet,
    padded or not), as in RFC 9421 B.1.5; or a JWK as a ``dict``; or a
    ``cryptography`` key object; or a :class:`Key`, returned as it is when
    its algorithm agrees.

    Without ``alg`` the algorithm is what the file names (a JWK ``alg``), or
    what the key allows when it leaves no choice (a secret, Ed25519, P-256,
    P-384); RSA keys need ``alg``. A key that does not fit ``alg`` is a
    :class:`KeyFormatError`: a key is bound to one algorithm.
    """
    if isinstance(material, Key):
        if alg is not None and alg != material.alg:
            raise KeyFormatError(f"signet: the key is bound to {material.alg}, not {alg}")
        return material
    named: Optional[str] = None
    m: Union[bytes, _PrivateKey, _PublicKey]
    if isinstance(material, (bytes, bytearray, memoryview)):
        data = bytes(material)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFormatError("signet: key file too large")
        try:
            material = data.decode("ascii")
        except UnicodeDecodeError:
            raise KeyFormatError("signet: a key file is ASCII text (PEM, JWK or base64); for a raw secret use hmac_key") from None
    if isinstance(material, str):
        m, named = _parse_text(material)
    elif isinstance(material, Mapping):
        m, named = _parse_jwk(material)
    elif isinstance(material, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePrivateKey,
                               ec.EllipticCurvePublicKey, rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        m = material
    else:
        raise TypeError("signet: a key must be key file text or bytes, a JWK dict, a cryptography key or a Key")
    if alg is not None and named is not None and alg != named:
        raise KeyFormatError(f"signet: the key file names {named}, not {alg}")
    return Key(alg or named or _infer(m), m)


def load_key_file(path: Union[str, "os.PathLike[str]"], alg: Optional[str] = None) -> Key:
    """Reads a key file (see :func:`load_key`)."""
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    return load_key(data, alg)


_B64_STD = re.compile(r"[A-Za-z0-9+/]*\Z")
_B64_URL = re.compile(r"[A-Za-z0-9\-_]*\Z")


def _parse_text(text: str) -> Tuple[Union[bytes, _PrivateKey, _PublicKey], Optional[str]]:
    s = text.strip()
    if not s:
        raise KeyFormatError("signet: key file is empty")
    if s.startswith("-----BEGIN"):
        return _parse_pem(s.encode("ascii", "replace")), None
    if s.startswith("{"):
        try:
            jwk = json.loads(s)
        except ValueError:
            raise KeyFormatError("signet: malformed JWK JSON") from None
        if not isinstance(jwk, dict):
            raise KeyFormatError("signet: a JWK must be a JSON object")
        return _parse_jwk(jwk)
    return _decode_secret(s), None


def _decode_secret(s: str) -> bytes:
    s = "".join(s.split()).rstrip("=")
    if _B64_STD.match(s):
        alphabet = None
    elif _B64_URL.match(s):
        alphabet = b"-_"
    else:
        raise KeyFormatError("signet: key file is neither PEM, JWK nor base64 text")
    try:
        secret = base64.b64decode(s + "=" * (-len(s) % 4), altchars=alphabet, validate=alphabet is None)
    except (binascii.Error, ValueError):
        raise KeyFormatError("signet: key file is neither PEM, JWK nor base64 text") from None
    if not secret:
        raise KeyFormatError("signet: empty HMAC secret")
    return secret


def _parse_pem(data: bytes) -> Union[_PrivateKey, _PublicKey]:
    private = re.match(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", data) is not None
    try:
        if private:
            key: Any = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    except TypeError:
        raise KeyFormatError("signet: encrypted private keys are not supported; decrypt it first") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"signet: cannot read the PEM key: {type(e).__name__}") from None
    if not isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePrivateKey,
                            ec.EllipticCurvePublicKey, rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        raise KeyFormatError(f"signet: unsupported key type {type(key).__name__}")
    return key


def _b64url_int(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_b64url(jwk, name), "big")


def _b64url(jwk: Mapping[str, Any], name: str) -> bytes:
    v = jwk.get(name)
    if not isinstance(v, str) or not _B64_URL.match(v.rstrip("=")):
        raise KeyFormatError(f"signet: JWK member {name!r} is missing or not base64url")
    v = v.rstrip("=")
    try:
        return base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"signet: JWK member {name!r} is not base64url") from None


def _parse_jwk(jwk: Mapping[str, Any]) -> Tuple[Union[bytes, _PrivateKey, _PublicKey], Optional[str]]:
    named = None
    if "alg" in jwk:
        a = jwk["alg"]
        named = _JWK_ALGS.get(a, a) if isinstance(a, str) else None
        if named not in ALGORITHMS:
            raise KeyFormatError(f"signet: JWK alg {a!r} is not supported")
    kty = jwk.get("kty")
    try:
        if kty == "oct":
            return _b64url(jwk, "k"), named
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise KeyFormatError(f"signet: JWK curve {jwk.get('crv')!r} is not supported")
            x = _b64url(jwk, "x")
            if "d" not in jwk:
                return ed25519.Ed25519PublicKey.from_public_bytes(x), named
            priv = ed25519.Ed25519PrivateKey.from_private_bytes(_b64url(jwk, "d"))
            if priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) != x:
                raise KeyFormatError("signet: the JWK's x is not the public key of its d")
            return priv, named
        if kty == "EC":
            curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
            curve = curves.get(jwk.get("crv"))  # type: ignore[arg-type]
            if curve is None:
                raise KeyFormatError(f"signet: JWK curve {jwk.get('crv')!r} is not supported")
            pub_numbers = ec.EllipticCurvePublicNumbers(_b64url_int(jwk, "x"), _b64url_int(jwk, "y"), curve)
            if "d" not in jwk:
                return pub_numbers.public_key(), named
            return ec.EllipticCurvePrivateNumbers(_b64url_int(jwk, "d"), pub_numbers).private_key(), named
        if kty == "RSA":
            pub_rsa = rsa.RSAPublicNumbers(_b64url_int(jwk, "e"), _b64url_int(jwk, "n"))
            if "d" not in jwk:
                return pub_rsa.public_key(), named
            d = _b64url_int(jwk, "d")
            if all(k in jwk for k in ("p", "q", "dp", "dq", "qi")):
                p, q = _b64url_int(jwk, "p"), _b64url_int(jwk, "q")
                dp, dq, qi = _b64url_int(jwk, "dp"), _b64url_int(jwk, "dq"), _b64url_int(jwk, "qi")
            else:
                p, q = rsa.rsa_recover_prime_factors(pub_rsa.n, pub_rsa.e, d)
                dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
            return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, pub_rsa).private_key(), named
    except KeyFormatError:
        raise
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"signet: the JWK is not a valid {kty} key: {type(e).__name__}") from None
    raise KeyFormatError(f"signet: JWK kty {kty!r} is not supported")


def generate_key_pair(alg: str = "ed25519") -> Tuple[str, str]:
    """Generates a key pair and returns it as PEM text: (PKCS#8 private, SPKI public)."""
    priv: Any
    if alg == "ed25519":
        priv = ed25519.Ed25519PrivateKey.generate()
    elif alg in _CURVES:
        priv = ec.generate_private_key(_CURVES[alg][0]())
    elif alg in ("rsa-pss-sha512", "rsa-v1_5-sha256"):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    else:
        raise ValueError(f"signet: cannot generate a key pair for {alg!r}")
    private_pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return private_pem, public_pem


def generate_secret() -> str:
    """Generates a 256-bit HMAC secret, as base64 text (the key file format)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")
