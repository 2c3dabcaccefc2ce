"""The member's POST with a reference and a receipt, against the same page's bare POST with the
reference alone, measured in the same rounds.

    .venv/bin/python -m bench.conversation_receipt [--members 20] [--rounds 5]

Starts the forms server under uvicorn on loopback, sends `--members` anonymous concerns (each
from its own browser) and keeps each reference and receipt from its confirmation page. Then, in
`--rounds` interleaved rounds, one request at a time (a member's wait is what matters):

- bare: POST /forms/status/ with the reference alone (is it being dealt with?);
- receipt: the same with the right receipt (one scrypt derivation, a sealed note for this
  browser, 303 to the conversation);
Then, in this process, `Conversations.verify` for a right receipt, a wrong one and an unknown
reference, each `--rounds` x `--members` times: the three should cost the same (one scrypt
derivation each), so an attacker cannot tell an unknown reference from a wrong receipt by time.
(Wrong tries over HTTP would start the growing waits, which is their point.)

Reported: the median and range of each round's mean time as a ratio to the bare POST, the mean
times themselves (noisy here: compare the ratios), and verify's medians.
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx2

from bench.forms import start_server
from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.reference import new_reference
from forms_server.handbook.build import build_handbook
from forms_server.storage.conversations import Conversations
from forms_server.storage.sealing import Sealer

RECEIPT = re.compile(r"\b\d{4} \d{4} \d{4} \d{4}\b")
REFERENCE = re.compile(r'class="reference">([^<]+)<')


def send_concern(url: str) -> tuple[str, str]:
    with httpx2.Client(base_url=url, follow_redirects=False) as browser:
        answers = {
            "about": "meeting",
            "immediate_risk": "no",
            "what_happened": "Something in a meeting worried me.",
            "why_concerned": "It may happen again.",
            "contact_preference": "no",
        }
        check = browser.post("/forms/concern/", data=answers)
        page = browser.get(check.headers["location"]).text
        send_to = re.search(r'action="[^"]*(/forms/check/[^"]+)"', page)
        if send_to is None:
            raise RuntimeError("no check page: " + page[:300])
        sent = browser.post(
            send_to.group(1),
            content=b"",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        if "location" not in sent.headers:
            raise RuntimeError(f"Send answered {sent.status_code}: " + sent.text[-600:])
        receipt_page = browser.get(sent.headers["location"]).text
        reference = REFERENCE.search(receipt_page)
        receipt = RECEIPT.search(receipt_page)
        if reference is None or receipt is None:
            raise RuntimeError("no reference or receipt on the confirmation page")
        return reference.group(1).strip(), receipt.group(0)


def mean_seconds(url: str, posts: list[dict[str, str]], expected: int) -> float:
    started = time.perf_counter()
    for data in posts:
        with httpx2.Client(base_url=url, follow_redirects=False) as browser:
            response = browser.post("/forms/status/", data=data)
        if response.status_code != expected:
            raise RuntimeError(f"expected {expected}, got {response.status_code}")
    return (time.perf_counter() - started) / len(posts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder) / "site"
        build_handbook(PROJECT_ROOT / "mkdocs.yml", site)
        environment = {
            "FORMS_DATA_DIR": str(Path(folder) / "data"),
            "FORMS_DATA_KEY": base64.urlsafe_b64encode(bytes(range(32))).decode(),
            "FORMS_SITE_DIR": str(site),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_MIN_CONFIRM_SECONDS": "0",
            "FORMS_CLIENT_POST_BURST": "1000000",
            "FORMS_GLOBAL_POST_BURST": "1000000",
        }
        server, url = start_server("forms_server.web.app:create_app", environment, factory=True)
        try:
            members = [send_concern(url) for _ in range(arguments.members)]
            bare = [{"reference": reference} for reference, _ in members]
            right = [{"reference": r, "receipt": receipt} for r, receipt in members]
            ratios: list[float] = []
            means: dict[str, list[float]] = {"bare": [], "receipt": []}
            for _ in range(arguments.rounds):
                base = mean_seconds(url, bare, 200)
                with_receipt = mean_seconds(url, right, 303)
                means["bare"].append(base)
                means["receipt"].append(with_receipt)
                ratios.append(with_receipt / base)
        finally:
            server.terminate()
            server.wait()
        verify = verify_times(Path(folder) / "data", members, arguments.rounds)
    print(f"{arguments.members} members, {arguments.rounds} interleaved rounds, one at a time")
    print(
        f"POST with the receipt: {statistics.median(ratios):.2f}x the bare POST "
        f"(range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    for name, values in means.items():
        print(f"{name}: mean {statistics.median(values) * 1000:.1f} ms")
    for name, values in verify.items():
        print(f"verify, {name}: median {statistics.median(values) * 1000:.1f} ms")


def verify_times(
    data_dir: Path, members: list[tuple[str, str]], rounds: int
) -> dict[str, list[float]]:
    conversations = Conversations(data_dir, Sealer(bytes(range(32))))
    tries = {
        "right receipt": members,
        "wrong receipt": [(reference, "0000 0000 0000 0000") for reference, _ in members],
        "unknown reference": [(new_reference(), receipt) for _, receipt in members],
    }
    times: dict[str, list[float]] = {name: [] for name in tries}
    for _ in range(rounds):
        for name, pairs in tries.items():
            for reference, receipt in pairs:
                started = time.perf_counter()
                conversations.verify(reference, receipt)
                times[name].append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    main()
