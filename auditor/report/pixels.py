"""Thumbnails stored once in a report: as SVG images the report shows, named in its JSON.

The results JSON carries each thumbnail as a `data:image/...` URI. Embedding that text
and showing the same pixels in `<img>` elements would store every thumbnail twice
(three or more times for a clean image shown beside each perturbation). Instead the
report keeps each distinct image once, as an SVG `<image id="px-SHA256">` in one hidden
store, shows it wherever it is needed with `<use href="#px-SHA256">` (no script), and
embeds the JSON with each such URI replaced by the token `"\\u0070x:SHA256"`.

`restore` turns the embedded text back into the results JSON, byte for byte, so the
header's digest (and a signature) cover the pixels as before: change an image in the
store and the restored JSON no longer hashes to the digest.

Why the token cannot be mistaken: `to_json` writes ASCII with `json.dumps`, which never
escapes a printable character such as `p`, so `"\\u0070x:` never occurs in results JSON
text; the token still parses as JSON (the string `px:SHA256`, naming the image by digest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from markupsafe import Markup, escape

# A whole JSON string holding an inline raster image; base64 needs no JSON escaping.
_URI_IN_JSON = re.compile(r'"(data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+)"')
_TOKEN = re.compile(r'"\\u0070x:([0-9a-f]{64})"')
_STORED = re.compile(r'<image id="px-([0-9a-f]{64})" href="([^"]*)"')
BOX = 96  # thumbnails are shown at most this many CSS pixels wide


@dataclass(frozen=True)
class Pixels:
    """One distinct image: its digest (the id), data URI and size in pixels."""

    sha256: str
    uri: str
    width: int
    height: int

    @property
    def ident(self) -> str:
        return f"px-{self.sha256}"


def sha256(uri: str) -> str:
    return hashlib.sha256(uri.encode("ascii")).hexdigest()


def size(uri: str) -> tuple[int, int]:
    """Return (width, height) of a PNG or GIF data URI from its header; (1, 1) otherwise.

    A square box is the fallback: the image keeps its aspect ratio inside it.
    """
    data = uri.split(",", 1)[1][:44]
    try:
        head = base64.b64decode(data[: len(data) - len(data) % 4])
    except binascii.Error:
        return 1, 1
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
    elif head[:4] == b"GIF8" and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
    else:
        return 1, 1
    return (int(width), int(height)) if width and height else (1, 1)


def stored(json_text: str) -> tuple[str, list[Pixels]]:
    """Return the JSON text to embed (images as tokens) and the distinct images, in order."""
    found: dict[str, Pixels] = {}

    def token(match: re.Match[str]) -> str:
        uri = match.group(1)
        digest = sha256(uri)
        if digest not in found:
            found[digest] = Pixels(digest, uri, *size(uri))
        return f'"\\u0070x:{digest}"'

    return _URI_IN_JSON.sub(token, json_text), list(found.values())


def restore(embedded: str, html: str) -> str:
    """Return the results JSON text: each token in `embedded` replaced by its stored image.

    A token whose image is missing from `html`, or whose image no longer hashes to its
    name, is left as it is: the restored text then fails the digest check.
    """
    images = {digest: uri for digest, uri in _STORED.findall(html) if sha256(uri) == digest}

    def image(match: re.Match[str]) -> str:
        uri = images.get(match.group(1))
        return f'"{uri}"' if uri is not None else match.group(0)

    return _TOKEN.sub(image, embedded)


def store(images: list[Pixels]) -> Markup:
    """The hidden SVG that holds each distinct image once, for `<use>` to show."""
    if not images:
        return Markup("")
    defs = "".join(
        f'<image id="{p.ident}" href="{p.uri}" width="{p.width}" height="{p.height}"/>'
        for p in images
    )
    return Markup(
        '<svg id="pixel-store" class="pixel-store" aria-hidden="true" width="0" height="0" '
        f'xmlns="http://www.w3.org/2000/svg"><defs>{defs}</defs></svg>'
    )


def thumbnail(uri: str, alt: str) -> Markup:
    """Show the stored image of `uri` at most `BOX` pixels wide, with `alt` as its name."""
    width, height = size(uri)
    shown_width = BOX if width >= height else round(BOX * width / height)
    shown_height = round(shown_width * height / width)
    return Markup(
        '<svg class="thumb" role="img" aria-label="{alt}" width="{w}" height="{h}" '
        'viewBox="0 0 {vw} {vh}" xmlns="http://www.w3.org/2000/svg">'
        '<use href="#px-{digest}"/></svg>'
    ).format(
        alt=escape(alt),
        w=shown_width,
        h=shown_height,
        vw=width,
        vh=height,
        digest=sha256(uri),
    )
