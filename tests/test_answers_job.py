"""The answers job (delivery/answers.py): a member's answer is one delivery per recipient, and
fails as any delivery does: where the host sees it (the health check and `forms-server
outbox`), tried again by `outbox --retry`; and a pass reads only the conversations that have
something to send, not every conversation kept."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from forms_server.mail.messages import new_message_id
from forms_server.services import Services
from forms_server.storage.outbox_items import RecipientState
from forms_server.storage.receipts import new_receipt
from tests import test_escalation
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer
from tests.test_cli import environment, forms_server
from tests.test_delivery import CONCERNS, SENDER, mail_settings, make_delivery
from tests.test_delivery_faults import Clock

REFUSED = "550 No such user here"
ANSWER = "It was Tuesday's meeting."


server = test_escalation.server


def delivery_for(tmp_path: Path, server: SmtpServer, clock: Clock) -> Services:
    return make_delivery(tmp_path / "data", mail_settings(server), clock=clock)


def conversation_with_an_answer(delivery: Services, reference: str, now: datetime) -> None:
    """A concern's conversation: the group asked, and the member answered both recipients."""
    files = delivery.files
    files.conversations.open_for(reference, "concern", ("concerns",), new_receipt(), now)
    files.asked(reference, CONCERNS[0], "Which meeting was it?")
    to = tuple(RecipientState(address, new_message_id(SENDER)) for address in CONCERNS)
    files.answered(reference, ANSWER, now, to)


def answers_to(server: SmtpServer, address: str) -> list[str]:
    return [
        str(received.message["Subject"])
        for received in server.handler.received
        if received.rcpt_tos == [address] and "answered" in str(received.message["Subject"])
    ]


async def answer_refused_for_one(server: SmtpServer, tmp_path: Path, clock: Clock) -> Services:
    """An answer the relay took for the first recipient and refused for good for the second."""
    delivery = delivery_for(tmp_path, server, clock)
    server.handler.refused_recipients[CONCERNS[1]] = REFUSED
    conversation_with_an_answer(delivery, "7CX-J7G-6TW", clock())
    await delivery.worker.run_pass()
    return delivery


@in_own_loop
async def test_a_refused_answer_is_reported_and_retried_like_any_delivery(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = await answer_refused_for_one(server, tmp_path, clock)
    assert len(answers_to(server, CONCERNS[0])) == 1
    assert answers_to(server, CONCERNS[1]) == []

    problems = delivery.worker.health(clock()).problems
    assert any(
        "conversation" in problem and "7CX-J7G-6TW" not in problem and "550" in problem
        for problem in problems
    ), problems
    shown = forms_server(tmp_path, environment(tmp_path, server), "outbox")
    assert f"Answer refused: 7CX-J7G-6TW to {CONCERNS[1]}" in shown.stdout, shown.stdout
    assert ANSWER not in shown.stdout
    assert shown.returncode == 1

    # The host mends the address at the relay, then asks for it again.
    del server.handler.refused_recipients[CONCERNS[1]]
    retried = forms_server(tmp_path, environment(tmp_path, server), "outbox", "--retry")
    assert "Failed messages queued again: 1" in retried.stdout, retried.stdout
    await delivery.worker.run_pass()
    assert len(answers_to(server, CONCERNS[1])) == 1
    assert len(answers_to(server, CONCERNS[0])) == 1, "never sent twice to the first"
    assert delivery.worker.health(clock()).ok, delivery.worker.health(clock()).problems


@in_own_loop
async def test_a_pass_reads_only_the_conversations_with_something_to_send(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = delivery_for(tmp_path, server, clock)
    conversations = delivery.files.conversations
    for number in range(30):
        conversations.open_for(
            f"7CX-J7G-{number:03d}", "concern", ("concerns",), new_receipt(), clock()
        )
    await delivery.worker.run_pass()

    before = conversations.files.files_read
    await delivery.worker.run_pass()
    assert conversations.files.files_read == before, "nothing to send: no conversation read"

    # An answer written by another process on the same folder is found at the next pass.
    other = delivery_for(tmp_path, server, clock)
    conversation_with_an_answer(other, "7CX-J7G-6TW", clock())
    before = conversations.files.files_read
    await delivery.worker.run_pass()
    assert len(answers_to(server, CONCERNS[0])) == len(answers_to(server, CONCERNS[1])) == 1
    # The marked one, and once more for each delivery written: never the 30 others.
    assert conversations.files.files_read - before <= 3

    before = conversations.files.files_read
    await delivery.worker.run_pass()
    assert conversations.files.files_read == before


@in_own_loop
async def test_a_refused_answer_the_host_dealt_with_can_be_dismissed(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock()
    delivery = await answer_refused_for_one(server, tmp_path, clock)
    dismissed = forms_server(
        tmp_path, environment(tmp_path, server), "outbox", "--dismiss", "7CX-J7G-6TW"
    )
    assert "Dismissed 7CX-J7G-6TW" in dismissed.stdout, dismissed.stdout
    assert "Answer refused" not in dismissed.stdout
    await delivery.worker.run_pass()
    assert delivery.worker.health(clock()).ok, delivery.worker.health(clock()).problems
    # The answer itself stays in the conversation: the group still reads it by their link.
    conversation = delivery.files.conversations.get("7CX-J7G-6TW")
    assert conversation is not None
    assert ANSWER in [m.text for m in delivery.files.conversations.messages(conversation)]


@in_own_loop
async def test_an_answer_written_before_the_markers_existed_is_still_sent(
    server: SmtpServer, tmp_path: Path
) -> None:
    """A server upgraded with an answer on its way: its file has no marker yet. The first pass
    looks at every conversation once, so the answer is not left unsent."""
    clock = Clock()
    writer = delivery_for(tmp_path, server, clock)
    conversation_with_an_answer(writer, "7CX-J7G-6TW", clock())
    # The data folder as the version before the markers left it: no `sending/` at all.
    shutil.rmtree(writer.files.conversations.sending_folder)
    delivery = delivery_for(tmp_path, server, clock)
    await delivery.worker.run_pass()
    assert len(answers_to(server, CONCERNS[0])) == len(answers_to(server, CONCERNS[1])) == 1
