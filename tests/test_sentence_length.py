"""No sentence over 25 words, on the handbook's pages, the server's pages and the emails alike
(GOV.UK's content style: long sentences are the first thing a reader in a hard moment loses).
Sentences are split as tests/readability.py splits them: at a full stop, question or
exclamation mark, and at the end of each block (heading, paragraph, list item, cell). A
sentence the guidelines themselves say is quoted as it stands."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from bs4 import BeautifulSoup
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.forms.definitions import FORMS
from tests import test_member_copy
from tests.handbook_pages import HandbookPage
from tests.readability import BLOCK_TAGS, article_blocks, sentences_in, words_in
from tests.test_guideline_coverage import guideline_sentences
from tests.test_member_copy import MEMBER, link_in, press, raw_messages_to
from tests.test_views import caught_email, post, send, valid_answers

app = test_member_copy.app
client = test_member_copy.client

LONGEST = 25


def words_of(text: str) -> list[str]:
    return [word.lower() for word in words_in(text)]


def quoted_from_the_guidelines(sentence: str) -> bool:
    said = " ".join(words_of(sentence))
    return any(
        " ".join(words_of(given)) in said or said in " ".join(words_of(given))
        for given in guideline_sentences()
        if len(words_of(given)) > LONGEST
    )


def too_long(blocks: list[str]) -> list[str]:
    return [
        f"{len(words_in(sentence))} words: {sentence.strip()}"
        for sentence in sentences_in(blocks)
        if len(words_in(sentence)) > LONGEST and not quoted_from_the_guidelines(sentence)
    ]


def page_blocks(html: str) -> list[str]:
    """A server page's main content, block by block, as article_blocks reads the handbook."""
    soup = BeautifulSoup(html, "html.parser")
    main = soup.select_one("main") or soup
    blocks = []
    for element in main.find_all(BLOCK_TAGS):
        if element.find(BLOCK_TAGS) is not None:
            continue
        text = element.get_text(" ", strip=True)
        if text:
            blocks.append(text)
    return blocks


def email_blocks(raw: bytes) -> list[str]:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    # A plain-text email's blocks are its lines.
    return [line.strip() for line in body.get_content().splitlines() if line.strip()]


def test_no_handbook_page_has_a_sentence_over_25_words(
    pages: list[HandbookPage], site_dir: Path
) -> None:
    found = {}
    for page in pages:
        html = (site_dir / page.url_path / "index.html").read_text("utf-8")
        if long := too_long(article_blocks(html)):
            found[page.source] = long
    assert found == {}, "\n".join(f"{where}: {s}" for where, long in found.items() for s in long)


def test_no_form_page_check_page_receipt_or_email_has_a_sentence_over_25_words(
    app: Starlette, client: TestClient
) -> None:
    found: dict[str, list[str]] = {}

    def check(where: str, blocks: list[str]) -> None:
        if long := too_long(blocks):
            found[where] = long

    for kind, form in FORMS.items():
        check(f"{kind} form", page_blocks(client.get(f"/forms/{kind}/").text))
        errors = client.post(f"/forms/{kind}/", data={}, follow_redirects=True)
        check(f"{kind} errors", page_blocks(errors.text))
        answers = dict(valid_answers(form))
        if any(spec.copy_address for spec in form.fields):
            # The consent form sends the copy to the address it keeps; a leave notice asks.
            answers |= {"copy": "link", "copy_email_link": MEMBER}
            if "email" in answers:
                answers["email"] = MEMBER
        check_page = post(client, f"/forms/{kind}/", answers)
        check(f"{kind} check page", page_blocks(check_page))
        sent = send(client, check_page)
        receipt = client.get(sent.headers["location"])
        check(f"{kind} receipt", page_blocks(receipt.text))
        reference = re.search(r'class="reference">([^<]+)<', receipt.text)
        assert reference is not None
        caught = caught_email(app, reference.group(1).strip())
        check(f"{kind} email", [line for line in caught.text.splitlines() if line.strip()])
    # The member's copy, their page, and the receipt after withdrawing consent.
    for raw in raw_messages_to(app, MEMBER, count=2):
        check("a member's copy", email_blocks(raw))
    copies = raw_messages_to(app, MEMBER, count=2)
    assert len(copies) >= 2, "a consent form and leave notices"
    for raw in copies:
        link = link_in(raw)
        check("the member's page", page_blocks(client.get(link).text))
        check("what we keep", page_blocks(press(client, link, "show")))
        check("are you sure", page_blocks(press(client, link, "ask")))
        check("the receipt for withdrawing or deleting", page_blocks(press(client, link, "delete")))
    assert found == {}, "\n".join(f"{where}: {s}" for where, long in found.items() for s in long)
