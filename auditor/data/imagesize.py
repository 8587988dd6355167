"""Image dimensions from the file header, read before decoding (decompression-bomb guard).

OpenCV has no header-only call in Python, and a 20 KB PNG can decode to gigabytes, so
the common formats' headers are parsed here: PNG, JPEG, GIF, BMP, WebP and PNM. For
other formats `header_size` returns None and the size is checked after decoding. The
file's own size is bounded too (`max_file_bytes`), before it is read whole.
"""

from __future__ import annotations

import struct

from auditor.errors import SampleError

DEFAULT_MAX_PIXELS = 100_000_000
HEADER_BYTES = 64 * 1024
"""Bytes read before the size checks: enough for the header of every format above."""
BYTES_PER_PIXEL = 16
"""The most an encoded image can take per pixel: four 32-bit float channels, uncompressed."""
METADATA_BYTES = 64 * 1024 * 1024
"""Room beside the pixels for metadata (EXIF, ICC profiles, XMP, embedded previews)."""

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(data: bytes) -> tuple[int, int] | None:
    """Return (width, height) read from the header of encoded image `data`, if known."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])  # type: ignore[return-value]
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] in (b"GIF8",):
            return struct.unpack("<HH", data[6:10])  # type: ignore[return-value]
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:1] == b"P" and data[1:2] in b"123456":
            return _pnm_size(data)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def max_file_bytes(max_pixels: int) -> int:
    """The largest file that can hold an image of at most `max_pixels` pixels.

    A file over it is refused unread: a sparse file of tens of gigabytes whose header
    says nothing would otherwise be read whole before the decoder gave up.
    """
    return max_pixels * BYTES_PER_PIXEL + METADATA_BYTES


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of `width` x `height` over `max_pixels` pixels."""
    if width * height > max_pixels:
        raise SampleError(
            f"{width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (--max-pixels)"
        )


def jpeg_truncated(data: bytes) -> bool:
    """True for a JPEG without its end-of-image marker (cut off while copying)."""
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        offset += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    tokens: list[int] = []
    for line in data[2:512].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            tokens.append(int(token))
            if len(tokens) == 2:
                return tokens[0], tokens[1]
    return None
