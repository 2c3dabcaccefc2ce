"""The handbook's files, sent as the build compressed them when the browser accepts that."""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, PathLike, StaticFiles
from starlette.types import Scope

from forms_server.handbook.precompress import ENCODINGS


def accepted_encodings(header: str) -> set[str]:
    """The codings an Accept-Encoding header allows: listed, and without q=0."""
    accepted = set()
    for part in header.split(","):
        name, _, parameters = part.strip().partition(";")
        quality = parameters.strip().removeprefix("q=").strip() if parameters else "1"
        try:
            allowed = float(quality) > 0
        except ValueError:
            allowed = False
        if name and allowed:
            accepted.add(name.strip().lower())
    return accepted


def compressed_sibling(path: str, suffix: str) -> os.stat_result | None:
    try:
        found = Path(path + suffix).stat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


class PrecompressedFiles(StaticFiles):
    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        request_headers = Headers(scope=scope)
        accepted = accepted_encodings(request_headers.get("accept-encoding", ""))
        path = os.fspath(full_path)
        variants = [
            (encoding, suffix, found)
            for encoding, suffix in ENCODINGS
            if (found := compressed_sibling(path, suffix)) is not None
        ]
        for encoding, suffix, found in variants:
            if encoding not in accepted:
                continue
            response: Response = FileResponse(
                path + suffix,
                status_code=status_code,
                stat_result=found,
                media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
                headers={"Content-Encoding": encoding, "Vary": "Accept-Encoding"},
            )
            if self.is_not_modified(response.headers, request_headers):
                return NotModifiedResponse(response.headers)
            return response
        response = super().file_response(full_path, stat_result, scope, status_code)
        if variants:
            # A cache must not hand the compressed file to a browser that did not ask for it.
            response.headers["Vary"] = "Accept-Encoding"
        return response
