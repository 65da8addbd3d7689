"""``file:checksum`` values: multihashes (hex), read and written with ``py-multihash``.

A multihash is ``varint(function code) varint(digest length) digest``. md5's code 0xd5 is more
than 7 bits, so its varint is two bytes and an md5 multihash starts ``d50110``. Events published
before this module wrote md5 as ``d510`` + digest (not a multihash); :func:`parse` still reads
that form (exactly ``d510`` and 32 hex digits) so those events stay downloadable, and
:func:`canonical` rewrites it. Every function ``py-multihash`` can compute (md5, sha1, sha2-*,
sha3-*, blake2*...) is verified on download (:func:`digest_of`).

This module does no I/O except :func:`digest_of`, which reads the file it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import multihash

LEGACY_MD5: Final = re.compile(r"^d510([0-9a-f]{32})$")


@dataclass(frozen=True)
class Checksum:
    """A parsed checksum: the multihash function name (``md5``, ``sha2-256``...), its code and
    the expected digest; ``legacy`` for the old ``d510`` md5 form."""

    function: str
    code: int
    digest: bytes
    legacy: bool = False

    @property
    def multihash(self) -> str:
        """The value as a correct multihash, hex (what the worker writes)."""
        return str(multihash.encode(self.digest, self.code).hex())


def parse(value: str) -> Checksum:
    """The :class:`Checksum` of a ``file:checksum`` value (hex, either case).

    Raises:
        ValueError: not hex, not a multihash (a code the library does not know, a length that
            does not match the digest), and not the legacy md5 form.
    """
    text = value.strip().lower()
    legacy = LEGACY_MD5.match(text)
    if legacy:
        return Checksum("md5", int(multihash.coerce_code("md5")), bytes.fromhex(legacy.group(1)), legacy=True)
    try:
        decoded = multihash.decode(bytes.fromhex(text))
    except (ValueError, TypeError, multihash.MultihashError) as exc:
        raise ValueError(f"file:checksum {value!r} is not a multihash: {exc}") from exc
    return Checksum(str(decoded.name), int(decoded.code), bytes(decoded.digest))


def canonical(value: str) -> str:
    """``value`` as a correct multihash (the legacy md5 form rewritten).

    Raises:
        ValueError: see :func:`parse`.
    """
    return parse(value).multihash


def md5_multihash(hexdigest: str) -> str:
    """The multihash of an md5 digest given in hex (OneAtlas's ``X-Ads-Checksum-Value``)."""
    return str(multihash.encode(bytes.fromhex(hexdigest), "md5").hex())


def digest_of(path: Path, checksum: Checksum) -> bytes:
    """The digest of the file at ``path`` with the checksum's function.

    Raises:
        ValueError: the library cannot compute that function.
        OSError: the file cannot be read.
    """
    with path.open("rb") as source:
        try:
            found = multihash.sum_stream(source, checksum.code, chunk_size=1 << 20)
        except multihash.MultihashError as exc:
            raise ValueError(f"cannot compute {checksum.function}: {exc}") from exc
    return bytes(found.digest)
