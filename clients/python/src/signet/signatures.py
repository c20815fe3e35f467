"""The Signature-Input, Signature and Accept-Signature fields (RFC 9421 §4, §5.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from . import sf
from .components import Component, check_duplicates
from .errors import Reason, VerifyError

__all__ = [
    "AcceptSignature",
    "ParsedSignature",
    "parse_accept_signature",
    "parse_signature_input",
    "parse_signatures",
    "serialize_signature_params",
]

_INTEGER_PARAMS = ("created", "expires")
_STRING_PARAMS = ("keyid", "alg", "nonce", "tag")


def serialize_signature_params(components: Sequence[Component], params: Mapping[str, sf.BareItem]) -> str:
    """The value of ``@signature-params`` and of a Signature-Input member:
    the inner list of component identifiers, then the parameters in order."""
    return "(" + " ".join(c.id for c in components) + ")" + sf.serialize_params(params)


@dataclass
class ParsedSignature:
    """One labelled signature of a message, as read from its fields."""

    label: str
    components: List[Component]
    params: Dict[str, sf.BareItem]
    """The signature parameters in received order, as sf values."""
    signature_params: str
    """The serialised ``@signature-params`` value."""
    value: bytes

    # Typed views of the parameters parse_signatures checked.

    @property
    def created(self) -> Optional[int]:
        return self._int("created")

    @property
    def expires(self) -> Optional[int]:
        return self._int("expires")

    @property
    def key_id(self) -> Optional[str]:
        return self._str("keyid")

    @property
    def alg(self) -> Optional[str]:
        return self._str("alg")

    @property
    def nonce(self) -> Optional[str]:
        return self._str("nonce")

    @property
    def tag(self) -> Optional[str]:
        return self._str("tag")

    def _int(self, name: str) -> Optional[int]:
        v = self.params.get(name)
        return v if type(v) is int else None

    def _str(self, name: str) -> Optional[str]:
        v = self.params.get(name)
        return v if isinstance(v, str) else None


class _EmptyAlg(ValueError):
    pass


def _components_of(member: sf.InnerList) -> List[Component]:
    comps = [Component.from_item(it) for it in member.items]
    check_duplicates(comps)
    return comps


def _check_params(params: Mapping[str, sf.BareItem]) -> None:
    for k, v in params.items():
        if k in _INTEGER_PARAMS and (type(v) is not int or v < 0):
            raise ValueError(f"parameter {k} must be a non-negative Integer")
        if k in _STRING_PARAMS:
            if not isinstance(v, str) or isinstance(v, sf.Token):
                raise ValueError(f"parameter {k} must be a String")
            if k == "alg" and v == "":
                # alg must name a registered algorithm (RFC 9421 §2.3).
                raise _EmptyAlg('alg="" names no algorithm')


def _joined(lines: Sequence[str]) -> str:
    return lines[0] if len(lines) == 1 else ", ".join(lines)


def parse_signatures(signature_input: Sequence[str], signature: Sequence[str]) -> List[ParsedSignature]:
    """Parses the field lines of Signature-Input and Signature, strictly, as
    the Go package does: both fields valid Dictionaries with no label or
    parameter given twice, each Signature-Input member an inner list of
    valid, distinct component identifiers with typed parameters, and a Byte
    Sequence in Signature for each of its labels. A Signature member without
    a Signature-Input member is ignored (RFC 9421 §4.2).

    Raises :class:`VerifyError`: ``missing-signature`` when neither field is
    there, ``malformed-signature`` for anything else wrong (and
    ``algorithm-mismatch`` for an empty ``alg``).
    """
    if not signature_input:
        if not signature:
            raise VerifyError(Reason.MISSING_SIGNATURE, "the message has no Signature-Input and Signature fields")
        raise VerifyError(Reason.MALFORMED_SIGNATURE, "the message has a Signature field but no Signature-Input field")
    if not signature:
        raise VerifyError(Reason.MALFORMED_SIGNATURE, "the message has a Signature-Input field but no Signature field")
    try:
        inputs = sf.parse_dictionary(_joined(signature_input), reject_duplicates=True)
    except sf.ParseError as e:
        raise VerifyError(Reason.MALFORMED_SIGNATURE, f"Signature-Input is not a valid Dictionary, or repeats a key: {e}") from None
    try:
        values = sf.parse_dictionary(_joined(signature), reject_duplicates=True)
    except sf.ParseError as e:
        raise VerifyError(Reason.MALFORMED_SIGNATURE, f"Signature is not a valid Dictionary, or repeats a key: {e}") from None
    out: List[ParsedSignature] = []
    for label, member in inputs.items():
        value = values.get(label)
        if value is None:
            raise VerifyError(Reason.MALFORMED_SIGNATURE, "Signature has no member for this label", label=label)
        if not isinstance(value, sf.Item) or not isinstance(value.value, bytes):
            raise VerifyError(Reason.MALFORMED_SIGNATURE, "the Signature member is not a Byte Sequence", label=label)
        out.append(_read_member(label, member, value.value))
    return out


def _read_member(label: str, member: sf.Member, value: bytes) -> ParsedSignature:
    try:
        if not isinstance(member, sf.InnerList):
            raise ValueError("signature input is not an inner list")
        comps = _components_of(member)
        _check_params(member.params)
    except _EmptyAlg as e:
        raise VerifyError(Reason.ALGORITHM_MISMATCH, f"Signature-Input: {e}", label=label) from None
    except ValueError as e:
        raise VerifyError(Reason.MALFORMED_SIGNATURE, f"Signature-Input: {e}", label=label) from None
    return ParsedSignature(
        label=label,
        components=comps,
        params=dict(member.params),
        signature_params=serialize_signature_params(comps, member.params),
        value=value,
    )


def parse_signature_input(value: str) -> List[ParsedSignature]:
    """Parses a Signature-Input field value alone (the signatures' ``value``
    is empty), with the checks of :func:`parse_signatures`."""
    try:
        inputs = sf.parse_dictionary(value, reject_duplicates=True)
    except sf.ParseError as e:
        raise VerifyError(Reason.MALFORMED_SIGNATURE, f"Signature-Input is not a valid Dictionary, or repeats a key: {e}") from None
    return [_read_member(label, member, b"") for label, member in inputs.items()]


@dataclass
class AcceptSignature:
    """One member of an Accept-Signature field (RFC 9421 §5.1): a signature
    the server asks for, by label, with the components it must cover and,
    if the server says, the key, algorithm, nonce or tag to use; ``created``
    and ``expires`` are set when the server asks the signer to add them."""

    label: str
    components: List[Component] = field(default_factory=list)
    key_id: Optional[str] = None
    alg: Optional[str] = None
    nonce: Optional[str] = None
    tag: Optional[str] = None
    created: bool = False
    expires: bool = False


def parse_accept_signature(value: str) -> List[AcceptSignature]:
    """Parses an Accept-Signature field value. Its component lists can be
    given to :class:`signet.Signer` as they are. Raises ``ValueError`` when
    the value is not a valid Accept-Signature."""
    try:
        members = sf.parse_dictionary(value, reject_duplicates=True)
    except sf.ParseError as e:
        raise ValueError(f"signet: Accept-Signature: {e}") from None
    out = []
    for label, member in members.items():
        if not isinstance(member, sf.InnerList):
            raise ValueError(f"signet: Accept-Signature {label} is not an inner list")
        a = AcceptSignature(label)
        try:
            a.components = _components_of(member)
        except ValueError as e:
            raise ValueError(f"signet: Accept-Signature {label}: {e}") from None
        for k, v in member.params.items():
            if k in _INTEGER_PARAMS:
                # Only the signer chooses these times; a request asks for
                # them with the bare parameter.
                if v is not True:
                    raise ValueError(f"signet: Accept-Signature {label}: {k} takes no value")
                setattr(a, k, True)
            elif k in _STRING_PARAMS:
                if not isinstance(v, str) or isinstance(v, sf.Token):
                    raise ValueError(f"signet: Accept-Signature {label}: {k} must be a String")
                setattr(a, "key_id" if k == "keyid" else k, v)
        out.append(a)
    return out
