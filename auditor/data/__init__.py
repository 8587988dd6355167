"""The samples of an audit: finding them (folders, manifests, videos), decoding them
safely, and small renderings of them (thumbnails).

`auditor.data.discover` and `auditor.data.decode` are the entry points; they live in
`auditor.data.samples`.
"""

from auditor.data.samples import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    MANIFEST_SUFFIXES,
    Dataset,
    Decoded,
    Sample,
    Skipped,
    decode,
    discover,
    read_image,
    stratified,
    to_rgb,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "MANIFEST_SUFFIXES",
    "Dataset",
    "Decoded",
    "Sample",
    "Skipped",
    "decode",
    "discover",
    "read_image",
    "stratified",
    "to_rgb",
]
