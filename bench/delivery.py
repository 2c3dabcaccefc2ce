"""Delivery under faults and with a long history, measured against itself in the same run.

    .venv/bin/python bench/delivery.py [--forms 200] [--kills 5]

- duplicates per SIGKILL: a worker process delivers `--forms` forms (two recipients each) to an
  SMTP relay in this process (aiosmtpd, a little slow so kills land mid-send) and is killed
  `--kills` times at random moments, then run to the end. Target: at most 1 duplicate per kill.
- cost with history: the median time of a worker pass (20 forms waiting, none due) and of a
  health check, with 0 and with 20,000 delivered markers on disk. Target: within 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Run as a script from the project folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.services import bench_mail, bench_services
from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.fields import Submission
from forms_server.forms.reference import new_reference
from forms_server.mail.catcher import free_loopback_port
from forms_server.services import Services

ANSWERS = {"name": "Bench Member", "dates": "2 and 9 December", "message": "Benchmark."}


class CountingRelay:
    """Counts each message it keeps. `delay`: seconds before the reply to the data (a slow
    relay); `drop_every`: every nth message is kept but the connection closes before the reply
    (a relay that drops after the data), so the sender cannot know it arrived."""

    def __init__(self, delay: float, drop_every: int = 0, drops: int = 8) -> None:
        self.delay = delay
        self.drop_every = drop_every
        # A few drops, so each is retried once after its backoff and the run ends.
        self.drops_left = drops if drop_every else 0
        self.dropped = 0
        self.seen = 0
        self.received: Counter[tuple[str, str]] = Counter()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        content = envelope.original_content or b""
        subject = next(
            (line for line in content.split(b"\r\n") if line.startswith(b"Subject:")), b""
        )
        self.received[(subject.decode(), envelope.rcpt_tos[0])] += 1
        self.seen += 1
        if self.drops_left and self.seen % self.drop_every == 0 and server.transport:
            self.drops_left -= 1
            self.dropped += 1
            server.transport.close()
        return "250 OK"


def delivery_for(data_dir: Path, port: int, **mail_changes: object) -> Services:
    # Duplicates and cost, not flood protection: every form in its own email.
    return bench_services(
        data_dir,
        bench_mail(port, **mail_changes),
        digest_after_per_hour=1_000_000,
        urgent_alone_per_hour=1000,
    )


def receive(delivery: Services, count: int) -> None:
    for _ in range(count):
        now = datetime.now(UTC)
        delivery.worker.intake.add(
            Submission(new_reference(), "leave-missing", dict(ANSWERS), now, False, None)
        )


WORKER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench.delivery import delivery_for
delivery = delivery_for(Path(sys.argv[1]), int(sys.argv[2]), timeout_seconds=float(sys.argv[4]))
async def main():
    worker = asyncio.create_task(delivery.worker.run())
    while delivery.outbox.pending().items:
        await asyncio.sleep(0.2)
    await delivery.worker.stop()
    await worker
asyncio.run(main())
"""


def duplicates_per_kill(
    forms: int, kills: int, relay_handler: CountingRelay, timeout: float = 5.0
) -> tuple[int, int, int]:
    port = free_loopback_port()
    relay = Controller(relay_handler, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            data_dir = Path(folder)
            receive(delivery_for(data_dir, port), forms)
            command = [
                sys.executable,
                "-c",
                WORKER,
                str(data_dir),
                str(port),
                str(PROJECT_ROOT),
                str(timeout),
            ]
            done_kills = 0
            for _ in range(kills):
                worker = subprocess.Popen(command, cwd=PROJECT_ROOT)
                time.sleep(random.uniform(0.5, 1.5))
                if worker.poll() is None:
                    worker.send_signal(signal.SIGKILL)
                    done_kills += 1
                worker.wait()
            subprocess.run(command, cwd=PROJECT_ROOT, check=True, timeout=600)
    finally:
        relay.stop()
    duplicates = sum(count - 1 for count in relay_handler.received.values())
    return len(relay_handler.received), duplicates, done_kills


def median_seconds(action: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost_with_history(markers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        delivery = delivery_for(data_dir, free_loopback_port())  # nothing listens: all back off
        for number in range(markers):
            (delivery.outbox.delivered_folder / f"M{number:08d}").touch()
        receive(delivery, 20)
        asyncio.run(delivery.worker.run_pass())  # every form fails once and backs off
        a_pass = median_seconds(lambda: asyncio.run(delivery.worker.run_pass()), 30)
        # One health check takes microseconds: time batches of them, so timer noise averages out.
        batch = 10_000
        health = median_seconds(
            lambda: [delivery.worker.health(datetime.now(UTC)) for _ in range(batch)], 15
        )
        return a_pass, health / batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forms", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    arguments = parser.parse_args()
    logging.disable(logging.WARNING)  # the backed-off sends below would fill the screen
    relays = {
        "a relay": (arguments.forms, CountingRelay(delay=0.01), 5.0),
        "a relay that drops 8 connections (every 25th) after the data": (
            arguments.forms,
            CountingRelay(delay=0.01, drop_every=25),
            5.0,
        ),
        # Few forms: each reply takes 1.5 s, beyond the 1 s allowed for every other step.
        "a relay that answers the data after 1.5 s (timeout 1 s for every other step)": (
            max(arguments.forms // 10, 10),
            CountingRelay(delay=1.5),
            1.0,
        ),
    }
    for name, (forms, handler, timeout) in relays.items():
        messages, duplicates, kills = duplicates_per_kill(forms, arguments.kills, handler, timeout)
        dropped = handler.dropped
        print(
            f"{name}: {forms} forms, {messages} distinct messages, {kills} SIGKILLs, "
            f"{dropped} dropped connections: {duplicates} duplicate(s), "
            f"{(duplicates - dropped) / max(kills, 1):.2f} per kill beyond the drops "
            "(target: <= 1)"
        )
    empty_pass, empty_health = cost_with_history(0)
    long_pass, long_health = cost_with_history(20_000)
    print(
        f"worker pass, 20 waiting: {empty_pass * 1000:.2f} ms with 0 markers, "
        f"{long_pass * 1000:.2f} ms with 20,000 ({long_pass / empty_pass:.2f}x, target <= 1.2)"
    )
    print(
        f"health check: {empty_health * 1e6:.1f} us with 0 markers, {long_health * 1e6:.1f} us "
        f"with 20,000 ({long_health / empty_health:.2f}x, target <= 1.2)"
    )


if __name__ == "__main__":
    main()
