"""Signing (RFC 9421 §3.1) in Signet's default profile."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import sf
from .components import Component, FieldType, base_bytes, check_duplicates, parse_component, signature_base
from .digest import content_digest
from .keys import Key, Material, load_key
from .message import ComponentError, Message, Request, Response, with_fields
from .signatures import serialize_signature_params

__all__ = ["DEFAULT_LABEL", "Signed", "Signer", "default_components", "new_nonce"]

DEFAULT_LABEL = "sig1"

_DEFAULTS = {n: Component(n) for n in ("@method", "@authority", "@path", "@query", "@status", "content-type", "content-digest")}


def new_nonce() -> str:
    """128 random bits in unpadded base64url: the nonce a Signer sends."""
    return secrets.token_urlsafe(16)


def default_components(message: Message, has_content: bool) -> List[Component]:
    """The components of Signet's default profile that apply to message, in
    signing order: ``@method @authority @path``, then ``@query`` when the
    query is not empty, ``content-type`` when the message has that field,
    and ``content-digest`` when it has content or a Content-Digest field.
    For a response: ``@status``, then the same two fields."""
    names = ["@status"] if isinstance(message, Response) else ["@method", "@authority", "@path"]
    if isinstance(message, Request) and message.split_target.query:
        names.append("@query")
    if "content-type" in message.fields:
        names.append("content-type")
    if has_content or "content-digest" in message.fields:
        names.append("content-digest")
    return [_DEFAULTS[n] for n in names]


@dataclass(frozen=True)
class Signed:
    """What signing produced. ``headers`` are the fields to set on the
    message, replacing any of the same name: ``Content-Digest`` (when the
    message has content), ``Signature-Input`` and ``Signature`` (with any
    signatures the message already carried)."""

    headers: Dict[str, str]
    base: str
    """The signature base, to compare with what a server reports."""
    label: str
    signature_params: str
    signature: bytes
    created: Optional[int]
    nonce: Optional[str]


@dataclass
class Signer:
    """Signs requests with one key, in the default profile or with the
    components it is given. A Signer holds no state between calls: it is
    safe for concurrent use once made.

    ``key`` is a :class:`signet.Key` or anything :func:`signet.load_key`
    reads (the text of a key file, say); ``alg`` binds key material that
    leaves a choice. ``components`` (identifiers such as ``'@method'`` or
    ``'"@query-param";name="id"'``) replaces the default profile. ``nonce``
    False leaves the nonce out, ``include_alg`` False the alg parameter.
    ``expires_in`` adds an ``expires`` parameter that many seconds after
    ``created``. ``digest`` is the Content-Digest algorithm. ``now`` is the
    clock (Unix seconds).
    """

    key_id: str
    key: Union[Key, Material]
    alg: Optional[str] = None
    label: str = DEFAULT_LABEL
    components: Optional[Sequence[Union[str, Component]]] = None
    tag: Optional[str] = None
    expires_in: Optional[int] = None
    nonce: bool = True
    include_alg: bool = True
    digest: str = "sha-256"
    structured: Optional[Mapping[str, FieldType]] = None
    now: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        self.key = load_key(self.key, self.alg)
        if not self.key.can_sign:
            raise ValueError("signet: signing needs a secret or a private key, not a public key")
        if not isinstance(self.key_id, str) or not self.key_id:
            raise ValueError("signet: a Signer needs a key_id")
        sf.serialize_bare_item(self.key_id)  # printable ASCII, or an error now rather than per request
        if not sf.is_key(self.label):
            raise ValueError(f"signet: {self.label!r} is not a valid signature label (lower-case letters, digits, _-.*)")
        if self.components is not None:
            self.components = [c if isinstance(c, Component) else parse_component(c) for c in self.components]
            check_duplicates(self.components)  # type: ignore[arg-type]
        content_digest(b"", self.digest)

    def sign(self, message: Message, *, created: Optional[int] = None, nonce: Optional[str] = None) -> Signed:
        """Signs a :class:`signet.Request` (or :class:`signet.Response`).

        Content gets a fresh Content-Digest, which replaces any the message
        carries. ``created`` (Unix seconds) and ``nonce`` override the
        clock and the random nonce. Raises ``ValueError`` when a component
        has no value in the message, or the message already has a signature
        with this label.
        """
        assert isinstance(self.key, Key)
        has_content = len(message.body) > 0
        headers: Dict[str, str] = {}
        if has_content:
            digest = content_digest(message.body, self.digest)
            headers["Content-Digest"] = digest
            fields = dict(message.fields)
            fields["content-digest"] = [digest]
            message = with_fields(message, fields)
        comps = list(self.components) if self.components is not None else default_components(message, has_content)

        params: Dict[str, sf.BareItem] = {}
        created = math.floor(self.now()) if created is None else created
        params["created"] = created
        params["keyid"] = self.key_id
        if self.include_alg:
            params["alg"] = self.key.alg
        if self.nonce:
            nonce = new_nonce() if nonce is None else nonce
            params["nonce"] = nonce
        else:
            nonce = None
        if self.expires_in is not None:
            params["expires"] = created + int(self.expires_in)
        if self.tag is not None:
            params["tag"] = self.tag

        sig_params = serialize_signature_params(comps, params)  # type: ignore[arg-type]
        try:
            base = signature_base(message, comps, sig_params, structured=self.structured)  # type: ignore[arg-type]
        except ComponentError as e:
            raise ValueError(f"signet: {e}") from None
        signature = self.key.sign(base_bytes(base))
        headers["Signature-Input"] = _merge(message.fields.get("signature-input"), self.label, f"{self.label}={sig_params}", "Signature-Input")
        headers["Signature"] = _merge(message.fields.get("signature"), self.label, f"{self.label}={sf.serialize_bare_item(signature)}", "Signature")
        return Signed(headers, base, self.label, sig_params, signature, created, nonce)


def _merge(lines: Optional[List[str]], label: str, ours: str, name: str) -> str:
    if not lines:
        return ours
    combined = ", ".join(lines)
    try:
        existing = sf.parse_dictionary(combined)
    except sf.ParseError as e:
        raise ValueError(f"signet: the message's {name} field is malformed: {e}") from None
    if label in existing:
        raise ValueError(f"signet: the message already has a signature labelled {label!r}")
    return f"{combined}, {ours}" if existing else ours
