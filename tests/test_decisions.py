"""The group's decisions: nothing is promised that the group did not decide, every decision
shows where it should once made, and the server refuses a handbook built from other decisions.

Each check reads what a member reads: the built pages, and the forms' pages as the server
renders them (the form, the leave chooser and each confirmation page).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from forms_server.cli.check import unsettled
from forms_server.config.decisions import DECISIONS, DECISIONS_FINGERPRINT_FILE, decisions_from
from forms_server.config.env import Settings, load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.forms.definitions import FORMS
from forms_server.handbook.build import HandbookBuildError
from forms_server.web.app import create_app
from forms_server.web.drafts import COOKIE
from tests.decided import DECIDED, group_with, write_group_config
from tests.handbook_pages import url_path_for
from tests.test_cli import environment, forms_server
from tests.test_views import send, valid_answers

# What a page may only say when the group decided it.
COMMITMENTS = {
    "a response time": r"\bwithin (?:\d+|one|two|three|a|an) (?:hours?|days?|weeks?|months?)\b"
    r"|\bsame day\b",
    "a retention period": r"\b(?:\d+|one|two|six|twelve) (?:months?|years?)\b|\beach year\b"
    r"|\bafter a year\b",
    "a legal basis": r"\bArticle \d|\bSchedule \d|\blegitimate interests?\b|\bpublic interest\b",
    "a renewal rule": r"\bsign (?:it )?again\b",
    "an exclusion": r"\bnot be able to come\b|\bonly for members\b|\bnobody else can join\b",
    "a claim about where data goes": r"\babroad\b|\bunder a contract\b",
    "a procedure": r"\bpolicy requires\b|\bcopy of the policy\b|\bwill tell you\b"
    r"|\btalk with you about coming back\b",
}


def page_texts(site_dir: Path, settings: Settings) -> dict[str, str]:
    """Every built page, and every page of the forms a member can reach."""
    texts = {}
    for page in sorted(site_dir.rglob("index.html")):
        soup = BeautifulSoup(page.read_text("utf-8"), "html.parser")
        article = soup.select_one("article")
        if article is not None:
            texts[str(page.relative_to(site_dir))] = article.get_text(" ")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        paths = ["/forms/leave/"]
        for kind in FORMS:
            paths += [f"/forms/{kind}/", sent_receipt(client, kind)]
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            main = BeautifulSoup(response.text, "html.parser").select_one("main")
            assert main is not None, path
            texts[path] = main.get_text(" ")
    return {where: re.sub(r"\s+", " ", text) for where, text in texts.items()}


def sent_receipt(client: TestClient, kind: str, **answers: str) -> str:
    """Sends a form as a member would; the path of its confirmation page."""
    check_page = client.post(f"/forms/{kind}/", data={**valid_answers(FORMS[kind]), **answers})
    assert check_page.status_code == 200, check_page.text
    sent = send(client, check_page.text)
    assert sent.status_code == 303
    return str(sent.headers["location"]).removeprefix("http://127.0.0.1")


def allowed_by(decisions: dict[str, Any], undelivered_days: int) -> tuple[set[str], list[str]]:
    """The phrases the decisions themselves make, and their free texts."""
    made = decisions_from(group_with(decisions))
    phrases = {f"{months} months" for months in made.retention_months.values()}
    phrases |= {f"within {days} days" for days in made.reply_within_days.values() if days}
    if made.consent_renewal_months:
        phrases |= {f"{made.consent_renewal_months} months", "sign again"}
    phrases.add(f"{undelivered_days} days")
    texts = [text for text in (*made.lawful_basis.values(), made.withdrawing_consent) if text]
    texts += [
        text
        for text in (made.removal_procedure, made.email_stored_where, made.cost, made.places)
        if text
    ]
    return phrases, texts


def unmade_commitments(texts: dict[str, str], decisions: dict[str, Any]) -> list[str]:
    phrases, free_texts = allowed_by(decisions, undelivered_days=7)
    found = []
    for where, text in texts.items():
        for decided_text in free_texts:
            text = text.replace(decided_text, "")
        for kind, pattern in COMMITMENTS.items():
            for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                if match.group(0) not in phrases:
                    start = max(match.start() - 50, 0)
                    found.append(f"{where}: {kind}: ...{text[start : match.end() + 30]}...")
    return found


@pytest.fixture(scope="module")
def decided_settings(decided_project: Path, decided_site: Path, tmp_path_factory: Any) -> Settings:
    return load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(tmp_path_factory.mktemp("decided-data")),
            "FORMS_SITE_DIR": str(decided_site),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_HANDBOOK_CONFIG": str(decided_project / "mkdocs.yml"),
            "FORMS_MIN_CONFIRM_SECONDS": "0",
            "FORMS_SAFEGUARDING": "lead@example.org,deputy@example.org",
        },
    )


def test_with_nothing_decided_no_page_or_form_makes_a_commitment(
    site_dir: Path, settings: Settings
) -> None:
    shipped = decisions_from(settings.group)
    assert shipped.reply_within_days == dict.fromkeys(shipped.reply_within_days)
    texts = page_texts(site_dir, settings)
    assert len(texts) > 25
    assert unmade_commitments(texts, {}) == []


def test_with_everything_decided_only_the_decisions_are_stated(
    decided_site: Path, decided_settings: Settings
) -> None:
    assert unmade_commitments(page_texts(decided_site, decided_settings), DECIDED) == []


def test_the_commitment_check_finds_what_the_first_version_promised() -> None:
    """The patterns catch each invented claim the audit found (so the checks above can fail)."""
    first_version = {
        "forms": "A facilitator will email you within 3 days with the meeting link.",
        "concern": "within 2 days, or the same day if someone is at risk.",
        "privacy": "We will answer within one month. This is UK GDPR Article 6(1)(a). "
        "We rely on our legitimate interests. Data Protection Act 2018, Schedule 1. "
        "We do not send it abroad. We ask you to sign again each year. Our email provider "
        "stores emails for us under a contract. Our safeguarding policy requires this. You can "
        "ask us for a copy of the policy.",
        "removal": "A facilitator will tell you. We will talk with you about coming back.",
        "withdraw": "You will not be able to come to meetings any more.",
        "faq": "The meeting is only for members who have signed the consent form.",
        "meeting": "We lock the meeting when it starts, so nobody else can join.",
    }
    found = " ".join(unmade_commitments(first_version, {}))
    for claim in (
        "within 3 days",
        "same day",
        "within one month",
        "Article 6",
        "legitimate interests",
        "Schedule 1",
        "abroad",
        "sign again",
        "each year",
        "under a contract",
        "policy requires",
        "copy of the policy",
        "will tell you",
        "talk with you about coming back",
        "not be able to come",
        "only for members",
        "nobody else can join",
    ):
        assert claim in found, claim


def text_of(site_dir: Path, source: str) -> str:
    html = (site_dir / url_path_for(source) / "index.html").read_text("utf-8")
    article = BeautifulSoup(html, "html.parser").select_one("article")
    assert article is not None
    return re.sub(r"\s+", " ", article.get_text(" "))


WHERE_EACH_DECISION_SHOWS: list[tuple[str, str, str]] = [
    ("concern_route", "forms.md", "It goes to our safeguarding lead and their deputy"),
    ("concern_route", "guidelines/safeguarding.md", "It goes to our safeguarding lead"),
    ("concern_route", "joining/faq.md", "goes to our safeguarding lead and their deputy"),
    ("concern_route", "about/privacy.md", "Our safeguarding lead and their deputy receive it"),
    ("facilitator_concern_email", "guidelines/safeguarding.md", "trustees@example.net"),
    ("facilitator_concern_email", "joining/faq.md", "trustees@example.net"),
    ("facilitator_concern_email", "forms.md", "trustees@example.net"),
    ("facilitator_concern_email", "about/privacy.md", "trustees@example.net"),
    ("reply_within_days", "about/privacy.md", "We will answer within 30 days"),
    ("retention_months", "about/privacy.md", "for 24 months"),
    ("retention_months", "about/privacy.md", "for 9 months"),
    ("retention_months", "about/privacy.md", "for 3 months"),
    ("lawful_basis", "about/privacy.md", DECIDED["lawful_basis"]["consent"]),
    ("lawful_basis", "about/privacy.md", DECIDED["lawful_basis"]["leave"]),
    ("lawful_basis", "about/privacy.md", DECIDED["lawful_basis"]["concern"]),
    ("consent_renewal_months", "about/privacy.md", "after 18 months, we ask you to sign again"),
    ("consent_renewal_months", "forms.md", "sign again after 18 months"),
    ("withdrawing_consent", "about/privacy.md", DECIDED["withdrawing_consent"]),
    ("removal_procedure", "guidelines/removal.md", DECIDED["removal_procedure"]),
    ("email_stored_where", "about/privacy.md", DECIDED["email_stored_where"]),
    ("mailbox_retention", "about/privacy.md", DECIDED["mailbox_retention"]),
    ("delivery_mode", "about/privacy.md", "Concerns, to whoever receives them: the email holds no"),
    ("read_window_days", "about/privacy.md", "encrypted, for 4 days, then are deleted"),
    ("draft_idle_minutes", "about/privacy.md", "or 35 minutes after your last step"),
    ("conversation_kept_days", "about/privacy.md", "for 21 days after the last one"),
    ("backup_kept_days", "about/privacy.md", "45 days from when it was made, then deleted"),
    ("safeguarding_policy_url", "guidelines/safeguarding.md", "read our safeguarding policy"),
    ("cost", "joining/faq.md", DECIDED["cost"]),
    ("places", "joining/faq.md", DECIDED["places"]),
    ("concern_route", "about/glossary.md", "Safeguarding lead"),
    ("facilitator_concern_email", "about/glossary.md", "trustees@example.net instead"),
    ("who_facilitates", "index.md", DECIDED["who_facilitates"]),
    ("who_facilitates", "about/glossary.md", DECIDED["who_facilitates"]),
    ("how_joining_works", "index.md", DECIDED["how_joining_works"]),
    ("consent_form_and_joining", "forms.md", DECIDED["consent_form_and_joining"]),
    ("reasons_for_leaving", "guidelines/attendance.md", DECIDED["reasons_for_leaving"]),
    ("reasons_for_leaving", "joining/faq.md", DECIDED["reasons_for_leaving"]),
    ("accessibility_commitment", "about/accessibility.md", DECIDED["accessibility_commitment"]),
]


def test_every_decision_has_a_place_where_it_shows() -> None:
    # reply_within_days shows on the confirmation pages (tested below); the escalation
    # decisions show in what the server does (tests/test_escalation.py), not on a page.
    # The weekly email of expiring consents shows in that email (tests/test_member_copy.py).
    elsewhere = {
        "reply_within_days",
        "escalation_email",
        "escalate_after_minutes",
        "expiring_consents_email_days",
    }
    assert {key for key, _, _ in WHERE_EACH_DECISION_SHOWS} | elsewhere == {
        spec.key for spec in DECISIONS
    }


@pytest.mark.parametrize(
    ("decision", "source", "phrase"),
    WHERE_EACH_DECISION_SHOWS,
    ids=[f"{key}-{source}" for key, source, _ in WHERE_EACH_DECISION_SHOWS],
)
def test_a_decision_shows_where_it_should_once_made_and_not_before(
    site_dir: Path, decided_site: Path, decision: str, source: str, phrase: str
) -> None:
    assert phrase in text_of(decided_site, source)
    assert phrase not in text_of(site_dir, source)


def test_the_policy_link_goes_where_the_group_said(decided_site: Path) -> None:
    html = (decided_site / "guidelines/safeguarding/index.html").read_text("utf-8")
    assert 'href="https://example.net/safeguarding-policy"' in html


@pytest.mark.parametrize(
    ("kind", "days"),
    [
        ("consent", 3),
        ("leave-leaving", 4),
        ("leave-missing", 4),
        ("leave-left-early", 4),
        ("concern", 2),
    ],
)
def test_a_confirmation_promises_a_reply_time_only_once_the_group_decides_one(
    settings: Settings, decided_settings: Settings, kind: str, days: int
) -> None:
    with TestClient(create_app(decided_settings), base_url="http://127.0.0.1") as client:
        assert f"within {days} days" in client.get(sent_receipt(client, kind)).text
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert "within" not in client.get(sent_receipt(client, kind)).text


def test_the_concern_confirmation_offers_the_facilitator_concern_contact_once_decided(
    settings: Settings, decided_settings: Settings
) -> None:
    with TestClient(create_app(decided_settings), base_url="http://127.0.0.1") as client:
        page = client.get(sent_receipt(client, "concern")).text
        assert "If your question is about a facilitator" in page
        assert "It goes to our safeguarding lead and their deputy." in page
        about_a_facilitator = client.get(sent_receipt(client, "concern", about="facilitator"))
        text = about_a_facilitator.text
        assert "It goes to trustees@example.net. It does not go to the facilitators." in text
        assert "Email the facilitators" not in text
        assert 'href="mailto:trustees@example.net"' in text
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        page = client.get(sent_receipt(client, "concern")).text
        assert "If your question is about a facilitator" not in page
        assert "It goes to the facilitators." in page


# -- The built handbook and the running server agree -------------------------------------------


def test_the_server_refuses_a_handbook_built_from_other_decisions(
    site_dir: Path, decided_project: Path, tmp_path: Path
) -> None:
    other = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(tmp_path / "data"),
            "FORMS_SITE_DIR": str(site_dir),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_HANDBOOK_CONFIG": str(decided_project / "mkdocs.yml"),
        },
    )
    with pytest.raises(HandbookBuildError, match="built from other group facts or decisions"):
        create_app(other)


def test_the_server_refuses_a_handbook_that_does_not_say_what_it_was_built_from(
    site_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site_dir, copy)
    (copy / DECISIONS_FINGERPRINT_FILE).unlink()
    moved = Settings(**{**settings.__dict__, "site_dir": copy})
    with pytest.raises(HandbookBuildError, match="fingerprint unknown"):
        create_app(moved)


# -- What `forms-server check` says ------------------------------------------------------------


def test_check_lists_every_decision_still_open(tmp_path: Path) -> None:
    result = forms_server(tmp_path, environment(tmp_path), "check")
    assert result.returncode == 0, result.stderr
    open_decisions = unsettled(
        load_settings(env_file=None, environ={"FORMS_DATA_DIR": str(tmp_path / "d")}).group
    )
    assert len(open_decisions) >= len(DECISIONS)
    for entry in open_decisions:
        assert f"  - {entry.spec.key}" in result.stdout
    assert "retention_months (consent, leave, concern): at its default" in result.stdout
    assert "concern_route: not decided" in result.stdout
    assert "!!" not in result.stdout


def test_check_in_production_says_so_prominently(tmp_path: Path) -> None:
    undecided = {key: value for key, value in DECIDED.items() if key != "cost"}
    config = tmp_path / "config"
    env = environment(
        tmp_path,
        FORMS_ENV="production",
        FORMS_SECRET_KEYS="k" * 40,
        FORMS_SMTP_HOST="127.0.0.1",
        FORMS_SMTP_PORT="1",
        FORMS_SAFEGUARDING="lead@example.org",
        FORMS_PUBLIC_URL="https://forms.example.org",
        FORMS_MAIL_FROM="forms@example.org",
        FORMS_HANDBOOK_CONFIG=str(write_group_config(config, undecided)),
    )
    result = forms_server(tmp_path, env, "check")
    assert "!! GROUP DECISIONS NOT YET MADE, OR AT THEIR DEFAULT: 1 !!" in result.stdout
    assert "  - cost: not decided" in result.stdout
    # The relay on port 1 is not there; the decisions are reported before that.
    assert result.returncode == 1


def test_the_shipped_file_lists_every_decision() -> None:
    text = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for spec in DECISIONS:
        assert f"      {spec.key}:" in text, spec.key


def test_the_draft_time_said_everywhere_is_the_one_the_server_keeps_to(
    decided_project: Path, decided_site: Path, tmp_path: Path
) -> None:
    """The privacy notice, every form and the drafts folder all take the group's one value;
    the cookie the notice names is the one the server sets."""
    minutes = DECIDED["draft_idle_minutes"]
    privacy = (decided_site / "about/privacy/index.html").read_text("utf-8")
    assert f'named "{COOKIE}"' in " ".join(privacy.replace("&quot;", '"').split())
    settings = load_settings(
        env_file=None,
        environ={
            "FORMS_DATA_DIR": str(tmp_path / "data"),
            "FORMS_SITE_DIR": str(decided_site),
            "FORMS_BUILD_HANDBOOK": "false",
            "FORMS_HANDBOOK_CONFIG": str(decided_project / "mkdocs.yml"),
        },
    )
    app = create_app(settings)
    files = app.state.forms.drafts.files
    assert files.idle_seconds == minutes * 60
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for kind in FORMS:
            page = " ".join(client.get(f"/forms/{kind}/").text.split())
            assert (
                "we keep your answers until you send them, "
                f"for {minutes} minutes after your last step" in page
            )
        sent = client.post(
            "/forms/concern/", data=valid_answers(FORMS["concern"]), follow_redirects=False
        )
        assert sent.headers["set-cookie"].startswith(f"{COOKIE}=")
