"""Health for the operator, not the world: `/healthz` says only ok or failing to anyone, and its
details to this machine or to a request with the health token; a pick-up wakes the worker, so
the health check clears at once rather than at the worker's next minute."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.links import ACKNOWLEDGE_SALT, Links
from forms_server.services import Services
from forms_server.signing import Purpose
from forms_server.storage.watch import Watched
from tests.test_views import BASE_URL, make_app

TOKEN = "a-health-token-for-monitoring-0123"  # noqa: S105 - a test token


def health_as(app: Starlette, client: tuple[str, int], **headers: str) -> dict[str, object]:
    response = TestClient(app, base_url=BASE_URL, client=client).get("/healthz", headers=headers)
    body: dict[str, object] = response.json()
    return body


def test_the_world_learns_only_ok_or_failing_and_the_operator_the_details(
    site_dir: Path, tmp_path: Path
) -> None:
    app = make_app(site_dir, tmp_path / "data", FORMS_HEALTH_TOKEN=TOKEN)
    elsewhere = ("203.0.113.9", 50000)
    # No pass has run yet, so it is failing ("the delivery worker is not running").
    assert health_as(app, elsewhere) == {"status": "failing"}
    assert health_as(app, elsewhere, authorization="Bearer not-the-token") == {"status": "failing"}
    detailed = health_as(app, elsewhere, authorization=f"Bearer {TOKEN}")
    assert detailed["problems"] == ["The delivery worker is not running."]
    assert "outbox" in detailed
    assert "problems" in health_as(app, ("127.0.0.1", 50000))
    assert "problems" in health_as(app, ("::1", 50000))
    # A proxy on this machine forwarding someone else's request: the world again.
    forwarded = health_as(app, ("127.0.0.1", 50000), **{"x-forwarded-for": "203.0.113.9"})
    assert forwarded == {"status": "failing"}


def test_a_pick_up_wakes_the_worker_so_the_health_check_clears_at_once(
    site_dir: Path, tmp_path: Path
) -> None:
    """An escalated concern nobody has picked up fails the health check; the button on the
    recipient's link wakes the worker, which clears it without waiting for its next minute
    (the bound below is half the worker's longest sleep)."""
    app = make_app(site_dir, tmp_path / "data")
    services: Services = app.state.services
    now = datetime.now(UTC)
    services.files.watch.start(
        Watched(
            reference="7CX-J7G-6TW",
            form_kind="concern",
            received_at=now,
            urgent=True,
            sealed="",
            escalate_at=now,
            escalated_at=now,
        )
    )
    local = TestClient(app, base_url=BASE_URL, client=("127.0.0.1", 50000))
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        deadline = time.monotonic() + 20
        while local.get("/healthz").json()["escalations_overdue"] != 1:
            assert time.monotonic() < deadline, local.get("/healthz").json()
            time.sleep(0.05)
        # The recipient's own link, as their email carried it.
        link = Links(app.state.forms.signer, "").url(
            "acknowledge",
            ACKNOWLEDGE_SALT,
            Purpose.ACKNOWLEDGE,
            {"reference": "7CX-J7G-6TW", "kind": "concern", "to": "f1@example.org"},
        )
        pressed = client.post(link, data={"token": link.rsplit("/", 1)[1]})
        assert pressed.status_code == 200
        assert "Being dealt with since" in pressed.text
        deadline = time.monotonic() + 30
        while local.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, local.get("/healthz").json()
            time.sleep(0.05)
    assert services.files.watch.get("7CX-J7G-6TW") is None
