"""Signet's Python client: HTTP Message Signatures as specified in RFC 9421,
with the Content-Digest field of RFC 9530.

It signs requests the way a Signet server expects them, byte for byte what
the Go package ``github.com/signet-dev/signet/httpsig`` and the Node.js
package ``@signet/client`` produce, and verifies them with the same checks
and reason codes.

Entry points: :class:`Signer` and :class:`Verifier` over a :class:`Request`
(or :class:`Response`); :func:`load_key`, :func:`load_key_file` and
:func:`hmac_key` for keys; :class:`signet.requests.SignetAuth` and
:class:`signet.httpx.SignetAuth` for HTTP clients, which check a gateway's
signed responses when given its keys (:func:`verify_response`,
:class:`GatewayKeys`); :func:`presign` for presigned URLs. Lower-level pieces:
:func:`content_digest`, :func:`check_content_digest`,
:func:`parse_signatures`, :func:`signature_base`,
:func:`parse_accept_signature`, :mod:`signet.sf`.
"""

from __future__ import annotations

from typing import Mapping, Optional

from .components import Component, parse_component, parse_components
from .components import signature_base as _signature_base
from .digest import DIGEST_ALGORITHMS, Digester, check_content_digest, content_digest
from .errors import Reason, Refused, SignetError, VerifyError
from .keys import ALGORITHMS, Key, KeyFormatError, generate_key_pair, generate_secret, hmac_key, load_key, load_key_file
from .message import ComponentError, Message, Request, Response
from .presign import PRESIGN_INPUT_PARAM, PRESIGN_SIGNATURE_PARAM, PRESIGN_TAG, presign
from .problem import DEFAULT_PROBLEM_BASE, Problem, raise_for_refusal, read_problem
from .response import GATEWAY_TAG, KEYS_PATH, RESPONSE_TAG, GatewayKeys, jwk_thumbprint, parse_jwks, verify_response
from .sign import DEFAULT_LABEL, Signed, Signer, default_components, new_nonce
from .signatures import AcceptSignature, ParsedSignature, parse_accept_signature, parse_signature_input, parse_signatures
from .verify import (
    DEFAULT_REQUIRED_PARAMS,
    MAX_SIGNATURES,
    KeyResolver,
    MemoryNonceStore,
    NonceStore,
    NonceStoreFull,
    Policy,
    Verified,
    Verifier,
)

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "GATEWAY_TAG",
    "KEYS_PATH",
    "PRESIGN_INPUT_PARAM",
    "PRESIGN_SIGNATURE_PARAM",
    "PRESIGN_TAG",
    "RESPONSE_TAG",
    "GatewayKeys",
    "jwk_thumbprint",
    "parse_jwks",
    "presign",
    "verified_response",
    "verify_response",
    "DEFAULT_LABEL",
    "DEFAULT_PROBLEM_BASE",
    "DEFAULT_REQUIRED_PARAMS",
    "DIGEST_ALGORITHMS",
    "MAX_SIGNATURES",
    "AcceptSignature",
    "Component",
    "ComponentError",
    "Digester",
    "Key",
    "KeyFormatError",
    "KeyResolver",
    "MemoryNonceStore",
    "Message",
    "NonceStore",
    "NonceStoreFull",
    "ParsedSignature",
    "Policy",
    "Problem",
    "Reason",
    "Refused",
    "Request",
    "Response",
    "SignetError",
    "Signed",
    "Signer",
    "Verified",
    "Verifier",
    "VerifyError",
    "check_content_digest",
    "content_digest",
    "default_components",
    "generate_key_pair",
    "generate_secret",
    "hmac_key",
    "load_key",
    "load_key_file",
    "new_nonce",
    "parse_accept_signature",
    "parse_component",
    "parse_components",
    "parse_signature_input",
    "parse_signatures",
    "raise_for_refusal",
    "read_problem",
    "signature_base",
]


def signature_base(
    message: Message,
    signature_input: str,
    *,
    label: Optional[str] = None,
    structured: Optional[Mapping[str, str]] = None,
) -> str:
    """The signature base of message for one signature, without signing or
    verifying anything: for debugging, and for comparing with the base a
    server reports in its debug mode.

    ``signature_input`` is a Signature-Input field value (``sig1=(…);…``;
    with several members, ``label`` picks one) or one member's value
    (``("@method" …);created=…``).
    """
    text = signature_input.strip()
    sigs = parse_signature_input("x=" + text if text.startswith("(") else text)
    chosen = [s for s in sigs if label is None or s.label == label]
    if len(chosen) != 1:
        raise ValueError("signet: signature_base needs exactly one signature; pass label")
    s = chosen[0]
    return _signature_base(message, s.components, s.signature_params, structured=structured)


def verified_response(response: object) -> Optional[Verified]:
    """The gateway signature that verified on a ``requests`` or ``httpx``
    response a :class:`signet.requests.SignetAuth` or
    :class:`signet.httpx.SignetAuth` with ``gateway_keys`` checked, or None."""
    extensions = getattr(response, "extensions", None)
    if isinstance(extensions, dict):
        v = extensions.get("signet_verified")
    else:
        v = getattr(response, "signet_verified", None)
    return v if isinstance(v, Verified) else None
