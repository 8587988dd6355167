"""The report's integrity: the embedded results JSON, its SHA-256, and Ed25519 signatures.

The HTML report embeds its results JSON in a `<script type="application/json">` block
and shows the SHA-256 of the `.json` file's exact text in its header. The block is that
text with each thumbnail stored once, as an image of the report, and named by its digest
(`auditor.report.pixels`); `read_embedded` puts the images back, byte for byte.
`auditor.report.verify` recomputes the digest, checks an optional signature over it,
and re-renders the embedded results to check that the visible report says what they say.
Signing needs the `cryptography` package (`pip install "auditor[sign]"`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor import files
from auditor.errors import AuditorError, ConfigError
from auditor.report.pixels import restore

EMBED_ID = "auditor-results"
_BLOCK = re.compile(
    r'<script type="application/json" id="' + EMBED_ID + r'">\n(.*?)</script>', re.S
)
_META = re.compile(r'<meta name="(auditor-[a-z0-9-]+)" content="([^"]*)">')
ALGORITHM = "Ed25519"
MAX_KEY_BYTES = 64 * 1024  # a PEM Ed25519 key is a few hundred bytes


class ReportUnreadable(AuditorError):
    """The file is not an auditor report (or not readable at all)."""


def digest(text: str) -> str:
    """Return the hex SHA-256 of `text` as UTF-8: what the report header shows."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise ConfigError(
            'signing needs the cryptography package: pip install "auditor[sign]"'
        ) from exc
    return serialization, ed25519


def _raw_public(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def fingerprint(raw_public: bytes) -> str:
    """Return `SHA256:<hex>` of a raw 32-byte Ed25519 public key."""
    return "SHA256:" + hashlib.sha256(raw_public).hexdigest()


def load_signing_key(key_path: Path) -> Any:
    """Return the Ed25519 private key in the unencrypted PEM file `key_path`."""
    serialization, ed25519 = _crypto()
    data = _read_key(key_path, "the signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_path}: expected an unencrypted PEM private key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{key_path}: expected an Ed25519 private key")
    return key


def _read_key(path: Path, what: str) -> bytes:
    try:
        return files.read_regular(path, MAX_KEY_BYTES)
    except files.Refused as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.detail}") from None


def sign(json_digest: str, key: Any) -> dict[str, str]:
    """Sign the ASCII hex digest with Ed25519 private `key`; return what the report shows."""
    raw = _raw_public(key.public_key())
    return {
        "algorithm": ALGORITHM,
        "signature": base64.b64encode(key.sign(json_digest.encode("ascii"))).decode("ascii"),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "fingerprint": fingerprint(raw),
    }


def load_public_key(path: Path) -> bytes:
    """Return the raw Ed25519 public key from a PEM file (public or private key)."""
    serialization, ed25519 = _crypto()
    data = _read_key(path, "the public key")
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: expected a PEM Ed25519 public key") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{path}: expected an Ed25519 public key")
    return _raw_public(key)


def signature_valid(signature: dict[str, str], json_digest: str, raw_public: bytes) -> bool:
    """Return whether `signature` is a valid Ed25519 signature of the digest by that key."""
    _, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw_public)
        key.verify(base64.b64decode(signature["signature"]), json_digest.encode("ascii"))
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


@dataclass(frozen=True)
class Embedded:
    """What a report file carries: its results JSON text, header digest and signature."""

    json_text: str
    claimed_digest: str
    generator: str
    signature: dict[str, str] | None
    blocks: int = 1  # embedded results blocks found; an intact report has exactly one


def read_embedded(text: str, origin: str) -> Embedded:
    """Pull the embedded results (images restored) and the claimed digest out of a report.

    A report with several results blocks is returned (the first one, and the count):
    it is an auditor report that was altered, not something else.
    """
    blocks = _BLOCK.findall(text)
    meta = {name: html.unescape(value) for name, value in _META.findall(text)}
    if not blocks or "auditor-results-sha256" not in meta:
        raise ReportUnreadable(f"{origin}: not an auditor report (no embedded results)")
    signature = None
    if "auditor-signature" in meta:
        signature = {
            "algorithm": meta.get("auditor-signature-algorithm", ALGORITHM),
            "signature": meta["auditor-signature"],
            "public_key": meta.get("auditor-public-key", ""),
            "fingerprint": meta.get("auditor-public-key-fingerprint", ""),
        }
    return Embedded(
        restore(blocks[0], text),
        meta["auditor-results-sha256"],
        meta.get("auditor-generator", ""),
        signature,
        len(blocks),
    )
