"""The server that serves the handbook: headers, compression, and the inline-script hashes."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from forms_server.config.env import Settings
from forms_server.handbook.build import inline_script_hashes
from forms_server.web.app import create_app


def test_pages_carry_the_privacy_and_security_headers(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.get("/")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers


def test_hsts_is_sent_over_https(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="https://127.0.0.1") as client:
        response = client.get("/")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_every_inline_script_is_allowed_by_its_hash(settings: Settings, site_dir: Path) -> None:
    hashes = inline_script_hashes(site_dir)
    assert hashes, "the theme has inline scripts; none were found"
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        policy = client.get("/guidelines/online-safety/").headers["content-security-policy"]
    assert all(source in policy for source in hashes)


def test_an_unknown_page_is_a_plain_404(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Exit this page" in response.text


def test_text_is_compressed(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.get("/", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


def test_fingerprinted_theme_files_are_cached_for_good_and_pages_revalidated(
    settings: Settings, site_dir: Path
) -> None:
    bundle = next(site_dir.glob("assets/javascripts/bundle.*.min.js")).relative_to(site_dir)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert "immutable" in client.get(f"/{bundle}").headers["cache-control"]
        assert client.get("/").headers["cache-control"] == "no-cache"
        assert client.get("/assets/quick-exit.js").headers["cache-control"] == (
            "public, max-age=3600"
        )


def test_only_pages_carry_the_content_security_policy(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert "content-security-policy" not in client.get("/assets/handbook.css").headers
        assert "content-security-policy" in client.get("/").headers


def test_the_privacy_notice_says_how_long_an_undelivered_form_is_kept(
    settings: Settings, site_dir: Path
) -> None:
    """The server erases an undelivered form's content after the group's number of days; the
    notice states the same number, from the same setting."""
    page = (site_dir / "about" / "privacy" / "index.html").read_text("utf-8")
    assert f"for up to {settings.undelivered_kept_days} days" in page
    assert settings.undelivered_kept_days == 7
