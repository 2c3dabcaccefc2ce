"""What answering a member's request costs, against a bare read of the same store.

    .venv/bin/python bench/rights.py [--members 1000] [--runs 5]

A store of `--members` consent records (and a tenth as many leave notices) is written once. The
baseline is reading every record and opening its sealed values (what any search must do: no
index of names or addresses is ever written). Then each operation is timed on the same store:
find by email, export as JSON and as CSV, and key rotation (everything sealed again). Reported
as medians and as ratios to the baseline measured in the same run, since absolute times on
these shared machines are not stable. Also: the bytes of a member's discreet copy and of a full
copy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.services import KEY, bench_mail, bench_services
from forms_server.export import as_csv, as_json
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.mail.messages import WIRE_POLICY, Envelope, build_member_copy, new_message_id
from forms_server.storage.records import SubmissionStore
from tests.test_views import valid_answers

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def fill(data: Path, members: int) -> str:
    store = SubmissionStore(data, KEY)
    submissions = [
        Submission(
            new_reference(),
            "consent",
            {
                **valid_answers(FORMS["consent"]),
                "name": f"Member {n}",
                "email": f"member{n}@example.org",
            },
            NOW - timedelta(days=n % 300),
            False,
            "v1",
        )
        for n in range(members)
    ]
    submissions += [
        Submission(
            new_reference(),
            "leave-missing",
            {**valid_answers(FORMS["leave-missing"]), "name": f"Member {n}"},
            NOW,
            False,
            None,
        )
        for n in range(0, members, 10)
    ]
    store.add_delivered_many(submissions, NOW)
    return f"member{members // 2}@example.org"


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bytes(full: bool) -> int:
    form = FORMS["leave-missing"]
    answers: Answers = {**valid_answers(form), "copy": "full" if full else "link"}
    submission = Submission(new_reference(), form.kind, answers, NOW, False, None)
    message = build_member_copy(
        submission,
        Envelope(
            "member@example.org", new_message_id("forms@bench.example"), bench_mail(25), "", NOW
        ),
        "https://forms.example/forms/yours/" + "x" * 120,
        NOW + timedelta(days=90),
        with_answers=full,
    )
    return len(message.as_bytes(policy=WIRE_POLICY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        email = fill(data, arguments.members)
        services = bench_services(data, bench_mail(25))
        store, rights = services.store, services.rights
        baseline = median_seconds(store.all, arguments.runs)
        # Each command as the tool runs it: the search, then what it does with what it found.
        results = {
            "find --email": median_seconds(lambda: rights.find(email=email), arguments.runs),
            "export (JSON)": median_seconds(
                lambda: as_json(rights.find(email=email), rights.data_dir, rights.clock()),
                arguments.runs,
            ),
            "export (CSV)": median_seconds(
                lambda: as_csv(rights.find(email=email), rights.data_dir), arguments.runs
            ),
            "keys rotate": median_seconds(rights.reseal, arguments.runs),
        }
        records = store.count()
        size = (data / "submissions.json").stat().st_size
    print(f"{records} records ({size / 1024:.0f} KiB), median of {arguments.runs} runs")
    print(f"  baseline (read and open every record): {baseline * 1000:.1f} ms")
    for name, seconds in results.items():
        print(f"  {name:<14} {seconds * 1000:8.1f} ms  {seconds / baseline:5.2f}x baseline")
    print(f"Member's copy: discreet {copy_bytes(False)} bytes, full {copy_bytes(True)} bytes")


if __name__ == "__main__":
    main()
