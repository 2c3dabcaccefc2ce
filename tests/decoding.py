"""Reading a blob as an attacker would: as it is, and every run in it that decodes as base64
(then as zlib, as a compressed itsdangerous payload does)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import zlib

RUN = re.compile(rb"[A-Za-z0-9_\-+/=.~]{16,}")


def decoded(blob: bytes) -> bytes:
    found = [blob]
    for run in RUN.findall(blob):
        for piece in re.split(rb"[.~]", run):
            for decode in (base64.urlsafe_b64decode, base64.b64decode):
                with contextlib.suppress(binascii.Error, ValueError):
                    plain = decode(piece + b"=" * (-len(piece) % 4))
                    found.append(plain)
                    with contextlib.suppress(zlib.error):
                        found.append(zlib.decompress(plain))
    return b"\n".join(found)
