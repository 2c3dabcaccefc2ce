"""The handbook's pages and assets are compressed once, at the build, not on every request."""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest
from starlette.testclient import TestClient

from tests.test_views import BASE_URL, make_app

TEXT_SUFFIXES = {".html", ".css", ".js", ".json", ".xml", ".svg", ".txt"}  # not .map


@pytest.fixture
def client(site_dir: Path, tmp_path: Path) -> TestClient:
    return TestClient(make_app(site_dir, tmp_path / "data"), base_url=BASE_URL)


def test_the_build_writes_gzip_and_brotli_beside_every_text_file_worth_it(site_dir: Path) -> None:
    """Every page was gzipped again on every request (0.53x a bare static file)."""
    worth_it = [
        path
        for path in site_dir.rglob("*")
        if path.suffix in TEXT_SUFFIXES
        and path.stat().st_size >= 1000
        and "lunr" not in path.parts  # the theme's own search, which no page loads
    ]
    assert len(worth_it) > 20
    missing = [
        str(path.relative_to(site_dir))
        for path in worth_it
        if not (
            path.with_name(path.name + ".gz").is_file()
            and path.with_name(path.name + ".br").is_file()
        )
    ]
    assert missing == []
    page = site_dir / "guidelines" / "index.html"
    original = page.read_bytes()
    assert gzip.decompress(page.with_name("index.html.gz").read_bytes()) == original
    assert brotli.decompress(page.with_name("index.html.br").read_bytes()) == original


@pytest.mark.parametrize(
    ("accepted", "encoding", "suffix"),
    [("gzip, deflate, br", "br", ".br"), ("gzip", "gzip", ".gz"), ("identity", None, "")],
)
def test_a_page_is_sent_as_the_file_compressed_at_the_build(
    client: TestClient, site_dir: Path, accepted: str, encoding: str | None, suffix: str
) -> None:
    response = client.get("/guidelines/", headers={"accept-encoding": accepted})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == encoding
    assert response.headers["content-type"].startswith("text/html")
    assert "accept-encoding" in response.headers["vary"].lower()
    on_disk = (site_dir / "guidelines" / f"index.html{suffix}").read_bytes()
    assert int(response.headers["content-length"]) == len(on_disk)
    assert response.headers["content-security-policy"]  # the server's own headers still
    # A conditional request for what it already has is answered with 304, per encoding.
    again = client.get(
        "/guidelines/",
        headers={"accept-encoding": accepted, "if-none-match": response.headers["etag"]},
    )
    assert again.status_code == 304


def test_fingerprinted_assets_are_kept_for_good_in_every_encoding(
    client: TestClient, site_dir: Path
) -> None:
    stylesheet = next((site_dir / "assets" / "stylesheets").glob("main.*.min.css"))
    path = "/" + str(stylesheet.relative_to(site_dir))
    for accepted in ("br", "gzip", "identity"):
        response = client.get(path, headers={"accept-encoding": accepted})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
        assert "immutable" in response.headers["cache-control"]
