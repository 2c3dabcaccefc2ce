"""How late an escalation goes, with the real worker loop and a real (loopback) SMTP relay.

    .venv/bin/python bench/escalation.py [--runs 5] [--after 2]

Each run: an urgent concern arrives; nobody marks it as being dealt with; the escalation
contact should receive it `--after` seconds later. Reported: the lag between when it was due
and when the relay had it (median and worst), and how many escalations each concern caused
(it must be exactly one). A second check marks a concern as being dealt with first: it must
cause none.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Run as a script from the project folder: the relay and settings of bench/delivery.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.services import bench_mail, bench_services
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.mail.catcher import free_loopback_port

ESCALATION = "escalation@bench.example"
ANSWERS = {
    "about": "member",
    "immediate_risk": "yes",
    "what_happened": "Benchmark.",
    "why_concerned": "Benchmark.",
    "contact_preference": "no",
}


class ArrivalRelay:
    def __init__(self) -> None:
        self.escalations: dict[str, list[float]] = {}
        # The relay runs in its own thread and loop: it wakes the bench's loop safely.
        self.arrived = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if envelope.rcpt_tos == [ESCALATION]:
            content = (envelope.original_content or b"").decode(errors="replace")
            for reference in content.split("ref ")[1:2]:
                self.escalations.setdefault(reference[:11], []).append(time.monotonic())
                if self.loop is not None:
                    self.loop.call_soon_threadsafe(self.arrived.set)
        return "250 OK"


async def run(after: float, runs: int, relay: ArrivalRelay, port: int) -> tuple[list[float], int]:
    relay.arrived = asyncio.Event()
    relay.loop = asyncio.get_running_loop()
    lags: list[float] = []
    repeats = 0
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        # Seconds rather than the minutes a group decides, so the bench runs in seconds.
        minutes = {"urgent": after / 60, "other": 2 * 24 * 60}
        delivery = bench_services(
            data, bench_mail(port), decisions={"escalate_after_minutes": minutes}
        )
        worker = asyncio.create_task(delivery.worker.run())
        for _ in range(runs):
            reference = new_reference()
            received = datetime.now(UTC)
            due = time.monotonic() + after
            await delivery.worker.receive(
                Submission(reference, "concern", dict(ANSWERS), received, True, None)
            )
            while reference not in relay.escalations:
                relay.arrived.clear()
                await relay.arrived.wait()
            lags.append(relay.escalations[reference][0] - due)
            await asyncio.sleep(after)  # time for a second escalation, were there one
            repeats += len(relay.escalations[reference]) - 1
        picked_up = new_reference()
        await delivery.worker.receive(
            Submission(picked_up, "concern", dict(ANSWERS), datetime.now(UTC), True, None)
        )
        delivery.files.pick_up(picked_up, "concern", "lead@bench.example")
        await asyncio.sleep(after * 2)
        repeats += len(relay.escalations.get(picked_up, []))
        await delivery.worker.stop()
        await worker
    return lags, repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--after", type=float, default=2.0)
    arguments = parser.parse_args()
    relay = ArrivalRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_loopback_port())
    controller.start()
    try:
        lags, extra = asyncio.run(run(arguments.after, arguments.runs, relay, controller.port))
    finally:
        controller.stop()
    print(f"{arguments.runs} urgent concerns, escalation after {arguments.after} s:")
    print(
        f"  lag from due to accepted by the relay: median {statistics.median(lags) * 1000:.0f} ms, "
        f"worst {max(lags) * 1000:.0f} ms"
    )
    print(f"  escalations beyond one per concern (and for one picked up in time): {extra}")


if __name__ == "__main__":
    main()
