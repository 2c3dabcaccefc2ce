"""What each delivery mode costs: message sizes, and the time to read a link-only form on a
phone-sized page.

    .venv/bin/python bench/delivery_modes.py [--runs 5]

Sizes: one concern, as the bytes that go on the wire, in each mode (full, link-only, S/MIME to
an RSA-2048 certificate, OpenPGP to a Curve25519 key made by gpg), as a ratio to the full email.

Time: in Debian's Chromium at 320 x 640, from opening a recipient's link to the form's text on
screen (the link, the button, the page with the answers), against loading the handbook's home
page in the same browser in the same run (the baseline). Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from forms_server.config.decisions import DeliveryMode
from forms_server.config.env import load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.handbook.build import build_handbook
from forms_server.links import Links
from forms_server.mail.crypto import load_recipient_key
from forms_server.mail.messages import WIRE_POLICY, new_message_id
from forms_server.services import signer_for
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.sealing import Sealer
from forms_server.web.app import create_app
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.test_delivery import mail_settings, make_delivery
from tests.test_message_crypto import openpgp_key, smime_certificate
from tests.test_views import valid_answers

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RECIPIENT = "f1@example.org"


def concern() -> Submission:
    answers: Answers = {
        **valid_answers(FORMS["concern"]),
        "what_happened": "Someone in the meeting said they had stopped taking their medication "
        "and did not see the point any more. " * 4,
    }
    return Submission(new_reference(), "concern", answers, NOW, True, None)


def sizes(folder: Path) -> dict[str, int]:
    delivery = make_delivery(folder, mail_settings(None), public_url="https://forms.example")
    composer = delivery.composer
    cert, _ = smime_certificate(folder)
    keys = {"S/MIME": load_recipient_key(RECIPIENT, cert)}
    keys["OpenPGP"] = load_recipient_key(RECIPIENT, openpgp_key(folder)[0])
    item = concern()
    found = {}
    for name, mode in (("full", DeliveryMode.FULL), ("link-only", DeliveryMode.LINK_ONLY)):
        message = composer.form_message(item, RECIPIENT, new_message_id("f@x.org"), mode, "x")
        found[name] = len(message.as_bytes(policy=WIRE_POLICY))
    for name, key in keys.items():
        composer.recipient_keys = {RECIPIENT: key}
        message = composer.form_message(
            item, RECIPIENT, new_message_id("f@x.org"), DeliveryMode.ENCRYPTED, "x"
        )
        found[name] = len(message.as_bytes(policy=WIRE_POLICY))
    return found


def read_times(folder: Path, runs: int) -> tuple[float, float]:
    site = folder / "site"
    build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
    settings = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(folder / "data"),
            "FORMS_SITE_DIR": str(site),
            "FORMS_BUILD_HANDBOOK": "false",
        },
    )
    port = free_port()
    settings = replace(settings, port=port)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    sealer = Sealer(settings.data_keys_bytes)
    room = ReadingRoom(settings.data_dir, timedelta(days=5))
    links = Links(signer_for(settings), base)
    baseline, reading = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for _ in range(runs):
            item = concern()
            room.keep(
                item.reference,
                "concern",
                True,
                datetime.now(UTC),
                sealer.seal(item.reference, {"answers": item.answers, "guidelines_version": None}),
            )
            context = browser.new_context(viewport={"width": 320, "height": 640})
            page = context.new_page()
            start = time.perf_counter()
            page.goto(base + "/", wait_until="load")
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            page.goto(links.read(item.reference, "concern", RECIPIENT), wait_until="load")
            page.get_by_role("button", name="Show the submission").click()
            page.get_by_text("did not see the point").first.wait_for()
            reading.append(time.perf_counter() - start)
            context.close()
        browser.close()
    server.should_exit = True
    thread.join(timeout=10)
    return statistics.median(baseline), statistics.median(reading)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        found = sizes(Path(folder))
        full = found["full"]
        print("Message sizes (one urgent concern, bytes on the wire):")
        for name, size in found.items():
            print(f"  {name:<10} {size:>6}  {size / full:4.2f}x full")
        baseline, reading = read_times(Path(folder), arguments.runs)
    print(f"Chromium at 320 px, median of {arguments.runs}:")
    print(f"  baseline (the handbook's home page): {baseline * 1000:.0f} ms")
    print(
        f"  open the link, press the button, read: {reading * 1000:.0f} ms "
        f"({reading / baseline:.2f}x the baseline)"
    )


if __name__ == "__main__":
    main()
