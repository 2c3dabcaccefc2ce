"""The built handbook's text files, compressed once at the build (gzip and brotli) instead of
on every request: the server sends the smaller file as it is (web/handbook_files.py), and a
static host can do the same (nginx's gzip_static, Caddy's precompressed)."""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import brotli  # type: ignore[import-untyped]

# Text compresses; images and fonts are compressed already. Source maps are left alone: only a
# developer's tools fetch them, and they are half the bytes.
TEXT_SUFFIXES = frozenset({".html", ".css", ".js", ".json", ".xml", ".svg", ".txt"})
# Below this, the headers outweigh the saving (the same threshold as GZipMiddleware's).
MINIMUM_BYTES = 1000
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
# The theme copies its own search's language files (lunr/, 1.1 MB) into every site; no page of
# ours loads them (the handbook has its own search), so compressing them would only cost time.
UNUSED_THEME_FILES = "lunr"


@dataclass(frozen=True)
class Precompressed:
    files: int
    original_bytes: int
    gzip_bytes: int
    brotli_bytes: int


def precompress(site_dir: Path) -> Precompressed:
    paths = [
        path
        for path in sorted(site_dir.rglob("*"))
        if path.suffix in TEXT_SUFFIXES
        and UNUSED_THEME_FILES not in path.relative_to(site_dir).parts
        and path.is_file()
        and path.stat().st_size >= MINIMUM_BYTES
    ]
    # Brotli's best quality is slow (seconds for the site) but releases the GIL: one thread per
    # CPU makes it a second or two, once per build, for a quarter fewer bytes than gzip.
    with ThreadPoolExecutor() as pool:
        sizes = list(pool.map(compress_beside, paths))
    return Precompressed(
        files=len(sizes),
        original_bytes=sum(size[0] for size in sizes),
        gzip_bytes=sum(size[1] for size in sizes),
        brotli_bytes=sum(size[2] for size in sizes),
    )


def compress_beside(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    # mtime=0: the same page always compresses to the same bytes.
    as_gzip = gzip.compress(data, compresslevel=9, mtime=0)
    as_brotli = brotli.compress(data, quality=11)
    path.with_name(path.name + ".gz").write_bytes(as_gzip)
    path.with_name(path.name + ".br").write_bytes(as_brotli)
    return len(data), len(as_gzip), len(as_brotli)
