"""A backup of 10,000 records against reading the store once, in one run.

    .venv/bin/python -m bench.backup [--records 10000] [--runs 5]

Fills a data folder with `--records` delivered records (as many deliveries would leave them),
then, `--runs` times alternately: reads the whole store once (every record opened from disk,
the bare baseline), and makes a backup (the snapshot under the locks, age encryption, the file
written durably). Reports the median of each, their ratio, and the sizes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pyrage import x25519  # type: ignore[import-untyped]

from bench.forms import prefill_store
from forms_server.storage.backup import make_backup
from forms_server.storage.records import SubmissionStore

KEY = bytes(range(32))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    recipient = str(x25519.Identity.generate().to_public())
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        prefill_store(data, KEY, arguments.records)
        store = SubmissionStore(data, KEY)
        reads, backups = [], []
        for run in range(arguments.runs):
            started = time.perf_counter()
            if len(store.all()) != arguments.records:
                raise RuntimeError("the store did not read back whole")
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            made = make_backup(
                data, [store.lock_path], (recipient,), Path(folder) / f"backups-{run}"
            )
            backups.append(time.perf_counter() - started)
        store_bytes = (data / "submissions.json").stat().st_size
    read, backup = statistics.median(reads), statistics.median(backups)
    print(f"{arguments.records:,} records, {arguments.runs} runs alternately, medians:")
    print(f"  read the store once: {read * 1000:.0f} ms ({store_bytes:,} bytes on disk)")
    print(
        f"  backup: {backup * 1000:.0f} ms, {backup / read:.2f}x the read; "
        f"{made.sealed_bytes:,} bytes ({made.files} files)"
    )


if __name__ == "__main__":
    main()
