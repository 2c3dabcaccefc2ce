"""One failure policy for every job: a job that fails is recorded, backed off and retried; one
that keeps failing is a problem on the health check and in `forms-server outbox` (another
process), never a silent retry loop; once it works again, the problem is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

from forms_server.delivery.runner import read_job_states
from tests.own_loop import in_own_loop
from tests.test_cli import environment, forms_server
from tests.test_delivery import mail_settings, make_delivery, submission
from tests.test_delivery_faults import Clock


@in_own_loop
async def test_a_job_that_keeps_failing_is_a_problem_the_operator_sees(tmp_path: Path) -> None:
    clock = Clock()
    data = tmp_path / "data"
    services = make_delivery(data, mail_settings(None), clock=clock)
    pending = services.outbox.pending_folder
    # A real fault: the folder of forms waiting to be sent is replaced by a file.
    shutil.rmtree(pending)
    pending.write_text("not a folder", encoding="utf-8")
    for _ in range(3):
        await services.worker.run_pass()
        clock.advance(minutes=2)  # past the job's backoff
    problems = services.worker.health(clock()).problems
    (failing,) = [problem for problem in problems if "delivery job" in problem]
    assert "failed 3 times in a row" in failing
    state = read_job_states(services.settings.data_dir / "jobs.json")["delivery"]
    assert state.failures == 3
    assert state.next_try_at is not None
    # While the folder is wrong, the command line stops with one clear line naming it.
    broken = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert broken.returncode == 2
    assert str(pending) in broken.stderr
    # Mended, before the worker's next try: the command line reads what the worker recorded.
    pending.unlink()
    pending.mkdir(mode=0o700)
    listing = forms_server(tmp_path, environment(tmp_path), "outbox")
    assert listing.returncode == 1
    assert f"Problem: {failing}" in listing.stdout
    # The next try works, the form goes, and the problem is gone.
    await services.worker.receive(submission("leave-missing"))
    await services.worker.run_pass()
    assert not any("job" in problem for problem in services.worker.health(clock()).problems)
    assert read_job_states(services.settings.data_dir / "jobs.json")["delivery"].failures == 0
