"""Valid HTML everywhere: the W3C validator (vnu) reports no error on any built handbook page or
on any state of the forms' pages. Assistive technology relies on valid markup."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from forms_server.forms.definitions import FORMS
from tests.test_views import BASE_URL, make_app, post, send, valid_answers
from tests.validator import html_errors


def test_every_built_handbook_page_is_valid_html(site_dir: Path) -> None:
    pages = sorted(site_dir.rglob("*.html"))
    assert len(pages) >= 19
    assert html_errors(pages) == []


def test_every_state_of_every_form_page_is_valid_html(site_dir: Path, tmp_path: Path) -> None:
    app = make_app(site_dir, tmp_path / "data")
    states: dict[str, str] = {}
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        for kind, form in FORMS.items():
            states[f"{kind}-empty"] = client.get(f"/forms/{kind}/").text
            # Nothing answered: the page comes back with every error, as a 400.
            states[f"{kind}-errors"] = client.post(
                f"/forms/{kind}/", data={form.fields[0].name: ""}, follow_redirects=True
            ).text
            check_page = post(client, f"/forms/{kind}/", valid_answers(form))
            states[f"{kind}-check"] = check_page
            received = send(client, check_page)
            states[f"{kind}-received"] = client.get(received.headers["location"]).text
        states["not-found"] = client.get("/forms/no-such-form/").text
        for name, query in {
            "search": "",
            "search-results": "camera",
            "search-none": "zzqx",
        }.items():
            states[name] = client.post("/search", data={"q": query}).text
    files = []
    for name, html in states.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        files.append(path)
    assert html_errors(files) == []
