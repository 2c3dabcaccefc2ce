"""Settings: embedded defaults for development, and a refusal to start without real secrets."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from forms_server.config.env import load_settings
from forms_server.config.group import SettingsError
from forms_server.links import Links
from forms_server.services import signer_for
from forms_server.signing import Purpose
from tests.decided import DECIDED, group_with, write_group_config

STRONG_OLD = "o" * 32
STRONG_NEW = "n" * 40
DATA_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode("ascii")


def environ_for(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"FORMS_DATA_DIR": str(tmp_path / "data"), "FORMS_BUILD_HANDBOOK": "false", **values}


def test_development_makes_a_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    first = load_settings(env_file=None, environ=environ_for(tmp_path))
    second = load_settings(env_file=None, environ=environ_for(tmp_path))
    key_file = tmp_path / "data" / "development-secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(first.secret_keys[0]) == str(second.secret_keys[0])
    assert len(str(first.secret_keys[0])) >= 32
    assert not first.is_production


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FORMS_SECRET_KEYS is not set"):
        load_settings(env_file=None, environ=environ_for(tmp_path, FORMS_ENV="production"))
    assert not (tmp_path / "data" / "development-secret-key").exists()


def test_a_short_secret_is_refused_and_named(tmp_path: Path) -> None:
    keys = f"{STRONG_OLD},too-short"
    with pytest.raises(SettingsError, match="key 2 is shorter than 32 bytes"):
        load_settings(
            env_file=None,
            environ=environ_for(tmp_path, FORMS_ENV="production", FORMS_SECRET_KEYS=keys),
        )


def test_keys_keep_their_order_for_rotation(tmp_path: Path) -> None:
    settings = load_settings(
        env_file=None,
        environ=environ_for(
            tmp_path,
            FORMS_ENV="production",
            FORMS_SECRET_KEYS=f"{STRONG_OLD}, {STRONG_NEW}",
            FORMS_DATA_KEY=DATA_KEY,
            FORMS_SMTP_HOST="smtp.example.org",
            FORMS_SAFEGUARDING="lead@example.org,deputy@example.org",
            FORMS_PUBLIC_URL="https://forms.example.org",
            FORMS_MAIL_FROM="forms@example.org",
            FORMS_HANDBOOK_CONFIG=str(write_group_config(tmp_path, DECIDED)),
        ),
    )
    assert [str(key) for key in settings.secret_keys] == [STRONG_OLD, STRONG_NEW]
    assert settings.is_production
    assert STRONG_NEW not in repr(settings)
    assert DATA_KEY not in repr(settings)
    assert settings.data_keys_bytes == [bytes(range(32))]


def test_production_refuses_to_start_without_a_data_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FORMS_DATA_KEY is not set"):
        load_settings(
            env_file=None,
            environ=environ_for(tmp_path, FORMS_ENV="production", FORMS_SECRET_KEYS=STRONG_NEW),
        )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("c2hvcnQ=", "key 1 must decode to 32 bytes, not 5"),
        ("not base64!", "key 1 must be URL-safe base64"),
        (f"{DATA_KEY},c2hvcnQ=", "key 2 must decode to 32 bytes"),
    ],
)
def test_a_bad_data_key_is_refused(tmp_path: Path, key: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env_file=None, environ=environ_for(tmp_path, FORMS_DATA_KEY=key))


def test_development_makes_a_private_data_key(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, environ=environ_for(tmp_path))
    key_file = tmp_path / "data" / "development-data-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [len(key) for key in settings.data_keys_bytes] == [32]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FORMS_ENV", "staging", "FORMS_ENV must be one of development, production"),
        ("FORMS_PORT", "eighty", "FORMS_PORT"),
        ("FORMS_PORT", "70000", "FORMS_PORT must be between 1 and 65535"),
        ("FORMS_TOKEN_MAX_AGE_SECONDS", "5", "FORMS_TOKEN_MAX_AGE_SECONDS must be between"),
    ],
)
def test_a_bad_value_names_its_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env_file=None, environ=environ_for(tmp_path, **{name: value}))


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("FORMS_PORT=8123\n", encoding="utf-8")
    settings = load_settings(env_file=env_file, environ=environ_for(tmp_path))
    assert settings.port == 8123


def production(tmp_path: Path, **values: str) -> dict[str, str]:
    complete = {
        "FORMS_HANDBOOK_CONFIG": str(write_group_config(tmp_path, DECIDED)),
        "FORMS_ENV": "production",
        "FORMS_SECRET_KEYS": STRONG_NEW,
        "FORMS_DATA_KEY": DATA_KEY,
        "FORMS_SMTP_HOST": "smtp.example.org",
        "FORMS_SAFEGUARDING": "lead@example.org,deputy@example.org",
        "FORMS_PUBLIC_URL": "https://forms.example.org",
        "FORMS_MAIL_FROM": "forms@example.org",
    }
    return environ_for(tmp_path, **(complete | values))


# -- One public address: where every emailed link points ------------------------------------------


def test_production_links_use_the_public_address_whatever_the_first_allowed_host(
    tmp_path: Path,
) -> None:
    """With FORMS_ALLOWED_HOSTS=127.0.0.1,forms.example.org every emailed link pointed at
    https://127.0.0.1/ and `check` called the configuration valid."""
    environ = production(tmp_path, FORMS_ALLOWED_HOSTS="127.0.0.1,forms.example.org")
    del environ["FORMS_PUBLIC_URL"]
    with pytest.raises(SettingsError, match="FORMS_PUBLIC_URL is not set") as refused:
        load_settings(env_file=None, environ=environ)
    assert "https://forms.your-group.org.uk" in str(refused.value)  # an example to copy
    environ["FORMS_PUBLIC_URL"] = "https://forms.example.org/"
    settings = load_settings(env_file=None, environ=environ)
    assert settings.public_url == "https://forms.example.org"
    link = Links(signer_for(settings), settings.public_url).url(
        "acknowledge", "any", Purpose.ACKNOWLEDGE, {"reference": "4KX-7QD-M21"}
    )
    assert link.startswith("https://forms.example.org/forms/acknowledge/")


@pytest.mark.parametrize(
    ("public_url", "message"),
    [
        ("https://127.0.0.1", "an IP address"),
        ("https://10.0.0.5:8443", "an IP address"),
        ("https://[::1]", "an IP address"),
        ("https://localhost", "localhost"),
        ("https://forms.localhost", "localhost"),
        ("http://forms.example.org", "must start with https://"),
        ("forms.example.org", "must start with https://"),
        ("https://forms.example.org/forms", "no path"),
        ("https://", "no host"),
    ],
)
def test_a_public_address_nobody_else_can_reach_is_refused(
    tmp_path: Path, public_url: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env_file=None, environ=production(tmp_path, FORMS_PUBLIC_URL=public_url))


def test_the_server_answers_to_its_public_address(tmp_path: Path) -> None:
    """Unset, the allowed hosts are the public address's host; set, they must include it."""
    settings = load_settings(env_file=None, environ=production(tmp_path))
    assert settings.allowed_hosts == ("forms.example.org",)
    both = production(tmp_path, FORMS_ALLOWED_HOSTS="forms.example.org,www.example.org")
    assert load_settings(env_file=None, environ=both).allowed_hosts == (
        "forms.example.org",
        "www.example.org",
    )
    elsewhere = production(tmp_path, FORMS_ALLOWED_HOSTS="other.example.org")
    with pytest.raises(SettingsError, match=r"forms\.example\.org is not in FORMS_ALLOWED_HOSTS"):
        load_settings(env_file=None, environ=elsewhere)


def test_production_needs_a_relay_and_named_safeguarding_leads(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, environ=production(tmp_path))
    assert settings.mail.host == "smtp.example.org"
    assert settings.mail.concerns == ("lead@example.org", "deputy@example.org")
    without_relay = production(tmp_path)
    del without_relay["FORMS_SMTP_HOST"]
    with pytest.raises(SettingsError, match="FORMS_SMTP_HOST is not set"):
        load_settings(env_file=None, environ=without_relay)
    without_leads = production(tmp_path)
    del without_leads["FORMS_SAFEGUARDING"]
    with pytest.raises(SettingsError, match="FORMS_SAFEGUARDING needs at least one") as refused:
        load_settings(env_file=None, environ=without_leads)
    # Why it is needed, and the form it takes.
    assert "concerns go to a safeguarding lead" in str(refused.value)
    assert "FORMS_SAFEGUARDING=lead@your-group.org.uk,deputy@your-group.org.uk" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FORMS_FACILITATORS", "a@example.org, not an address", "is not an email address"),
        ("FORMS_SMTP_SECURITY", "ssl3", "FORMS_SMTP_SECURITY must be one of"),
        ("FORMS_SMTP_CA_FILE", "/no/such/ca.pem", "does not exist"),
        ("FORMS_FACILITATORS", "john.@example.org", "is not an email address"),
        ("FORMS_ALLOWED_HOSTS", "*", "without '\\*'"),
        ("FORMS_ALLOWED_HOSTS", "forms.example.org,*.example.org", "without '\\*'"),
        ("FORMS_MAIL_FROM", "forms@localhost.localdomain", "FORMS_MAIL_FROM is not set"),
        ("FORMS_ALERT_URGENT_AFTER_MINUTES", "90", "no more than"),
    ],
)
def test_bad_mail_settings_are_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env_file=None, environ=production(tmp_path, **{name: value}))


def test_development_mail_goes_to_the_embedded_catcher(tmp_path: Path) -> None:
    mail = load_settings(env_file=None, environ=environ_for(tmp_path)).mail
    assert mail.host is None
    assert mail.facilitators == ("facilitators@example.org",)
    # The group has not decided: concerns go to the facilitators, as the guidelines say, and
    # a concern about a facilitator to a placeholder the embedded catcher keeps.
    assert mail.concerns == mail.facilitators
    assert mail.facilitator_concerns == ("facilitator-concerns@example.org",)


@pytest.mark.parametrize("missing", ["FORMS_PUBLIC_URL", "FORMS_MAIL_FROM"])
def test_production_names_its_hosts_and_its_sender(tmp_path: Path, missing: str) -> None:
    environ = production(tmp_path)
    del environ[missing]
    with pytest.raises(SettingsError, match=f"{missing} is not set"):
        load_settings(env_file=None, environ=environ)


def test_development_refuses_a_wildcard_host_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FORMS_ALLOWED_HOSTS must name each host"):
        load_settings(env_file=None, environ=environ_for(tmp_path, FORMS_ALLOWED_HOSTS="*"))


# -- Concern routing: the group's decision ------------------------------------------------------


def test_concerns_go_to_the_facilitators_when_the_group_decides_so(tmp_path: Path) -> None:
    config = write_group_config(tmp_path / "custom", DECIDED | {"concern_route": "facilitators"})
    mail = load_settings(
        env_file=None,
        environ=production(tmp_path, FORMS_HANDBOOK_CONFIG=str(config), FORMS_SAFEGUARDING=""),
    ).mail
    assert mail.concerns == mail.facilitators == ("facilitators@example.org",)
    assert mail.facilitator_concerns == ("trustees@example.net",)


def test_concerns_go_to_a_lead_and_deputy_when_the_group_decides_so(tmp_path: Path) -> None:
    mail = load_settings(env_file=None, environ=production(tmp_path)).mail
    assert mail.concerns == ("lead@example.org", "deputy@example.org")
    assert mail.facilitator_concerns == ("trustees@example.net",)


@pytest.mark.parametrize("undecided", ["concern_route", "facilitator_concern_email"])
def test_production_refuses_to_start_until_the_group_decides_who_gets_concerns(
    tmp_path: Path, undecided: str
) -> None:
    config = write_group_config(tmp_path / "custom", DECIDED | {undecided: "not decided"})
    with pytest.raises(SettingsError, match=f"{undecided} is not decided"):
        load_settings(
            env_file=None, environ=production(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


@pytest.mark.parametrize(
    "address", ["facilitators@example.org", "Facilitators@Example.org", "FACILITATORS@EXAMPLE.ORG"]
)
def test_a_facilitator_never_receives_concerns_about_facilitators(
    tmp_path: Path, address: str
) -> None:
    config = write_group_config(
        tmp_path / "custom", DECIDED | {"facilitator_concern_email": address}
    )
    with pytest.raises(SettingsError, match="must not be a facilitator's address"):
        load_settings(
            env_file=None, environ=environ_for(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


@pytest.mark.parametrize(
    ("decisions", "message"),
    [
        ({"concern_route": "the trustees"}, "concern_route must be"),
        ({"facilitator_concern_email": "john.@example.org"}, "is not an email address"),
        ({"reply_within_days": {"consent": "soon"}}, "reply_within_days.consent must be"),
        ({"reply_within_days": {"weekends": 2}}, "unknown weekends"),
        ({"retention_months": {"leave": "not decided"}}, "cannot be left undecided"),
        ({"cost": ""}, "cost must be some text"),
        ({"safeguarding_policy": "x"}, "unknown decision"),
    ],
)
def test_a_decision_the_server_cannot_use_is_named(
    tmp_path: Path, decisions: dict[str, object], message: str
) -> None:
    config = write_group_config(tmp_path / "custom", decisions)
    with pytest.raises(SettingsError, match=message):
        load_settings(
            env_file=None, environ=environ_for(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


@pytest.mark.parametrize("address", ["facilitators@example.org", "FACILITATORS@example.org"])
def test_the_escalation_contact_is_never_a_facilitator(tmp_path: Path, address: str) -> None:
    config = write_group_config(tmp_path / "custom", DECIDED | {"escalation_email": address})
    with pytest.raises(SettingsError, match="escalation_email must not be a facilitator"):
        load_settings(
            env_file=None, environ=environ_for(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


def test_production_refuses_to_start_without_an_escalation_contact(tmp_path: Path) -> None:
    config = write_group_config(tmp_path / "custom", DECIDED | {"escalation_email": "not decided"})
    with pytest.raises(SettingsError, match="escalation_email is not decided"):
        load_settings(
            env_file=None, environ=production(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


# -- Never a facilitator: against every facilitator address, configured and published ----------


@pytest.mark.parametrize("decision", ["facilitator_concern_email", "escalation_email"])
def test_the_facilitators_published_address_is_never_where_concerns_about_them_go(
    tmp_path: Path, decision: str
) -> None:
    """With FORMS_FACILITATORS set, the address the handbook publishes for the facilitators
    was accepted: concerns about a facilitator would have gone to the facilitators."""
    published = str(group_with(DECIDED)["facilitators_email"])
    config = write_group_config(tmp_path / "custom", DECIDED | {decision: published.upper()})
    environ = production(
        tmp_path,
        FORMS_HANDBOOK_CONFIG=str(config),
        FORMS_FACILITATORS="sam@example.org,alex@example.org",
    )
    with pytest.raises(SettingsError, match=f"{decision} must not be a facilitator's address"):
        load_settings(env_file=None, environ=environ)


def test_a_setting_written_twice_in_mkdocs_yml_is_named_not_silently_overridden(
    tmp_path: Path,
) -> None:
    """The last of two `cost:` lines won silently: the group decided one thing and the
    handbook said another."""
    config = write_group_config(tmp_path / "custom", DECIDED)
    text = config.read_text("utf-8")
    cost_line = next(line for line in text.splitlines() if line.strip().startswith("cost:"))
    config.write_text(text.replace(cost_line, f"{cost_line}\n{cost_line}", 1), "utf-8")
    with pytest.raises(SettingsError, match=r"'cost' is set twice .*line \d+ and line \d+"):
        load_settings(
            env_file=None, environ=production(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


# -- Which mkdocs.yml: the folder's own wins over the packaged copy -----------------------------


def test_the_mkdocs_yml_in_the_folder_the_server_starts_in_is_the_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed server read the copy inside the package and ignored ./mkdocs.yml: the
    group's facts and decisions, edited there, never reached the forms."""
    folder = tmp_path / "deployment"
    own = write_group_config(folder, DECIDED | {"cost": "Ours: wording Q7."})
    own.rename(folder / "mkdocs.yml")
    monkeypatch.chdir(folder)
    settings = load_settings(env_file=None, environ=environ_for(tmp_path))
    assert settings.handbook_config == folder / "mkdocs.yml"
    assert settings.decisions.cost == "Ours: wording Q7."


def test_a_broken_mkdocs_yml_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mkdocs.yml").write_text("extra:\n  group: [not, the, facts]\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=str(tmp_path / "mkdocs.yml")):
        load_settings(env_file=None, environ=environ_for(tmp_path))


# -- The handbook's address: from .env when the server builds, and agreeing with the forms' ----


def test_the_handbook_address_comes_from_dotenv_or_the_public_address(tmp_path: Path) -> None:
    """FORMS_SITE_URL in .env was silently ignored: only the process environment reached the
    build, so the sitemap and canonical links kept 127.0.0.1."""
    env_file = tmp_path / ".env"
    env_file.write_text("FORMS_SITE_URL=https://handbook.example.org\n", encoding="utf-8")
    from_file = load_settings(env_file=env_file, environ=production(tmp_path))
    assert from_file.site_url == "https://handbook.example.org/"
    assert load_settings(env_file=None, environ=production(tmp_path)).site_url == (
        "https://forms.example.org/"
    )
    with pytest.raises(SettingsError, match="FORMS_SITE_URL must be a full address"):
        load_settings(env_file=None, environ=production(tmp_path, FORMS_SITE_URL="handbook"))


def test_the_handbooks_links_to_the_forms_must_reach_the_public_address(tmp_path: Path) -> None:
    config = write_group_config(tmp_path / "custom", DECIDED)
    text = config.read_text("utf-8").replace(
        "forms_url: /forms/", "forms_url: https://old-host.example.org/forms/"
    )
    assert "old-host" in text
    config.write_text(text, "utf-8")
    with pytest.raises(SettingsError, match=r"forms_url .*old-host.* FORMS_PUBLIC_URL"):
        load_settings(
            env_file=None, environ=production(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


def test_check_names_a_site_name_that_the_build_would_refuse(tmp_path: Path) -> None:
    """`check` called the configuration valid; `serve` then stopped at the build."""
    config = write_group_config(tmp_path / "custom", DECIDED)
    config.write_text(
        config.read_text("utf-8").replace("site_name: Harbour", "site_name: Our"), "utf-8"
    )
    with pytest.raises(SettingsError, match="site_name must be 'Harbour Peer Support handbook'"):
        load_settings(
            env_file=None, environ=environ_for(tmp_path, FORMS_HANDBOOK_CONFIG=str(config))
        )


def test_the_forms_links_to_the_handbook_must_reach_where_it_is_published(
    tmp_path: Path,
) -> None:
    elsewhere = production(
        tmp_path,
        FORMS_SITE_URL="https://handbook.example.org/",
        FORMS_HANDBOOK_URL="https://old-handbook.example.org/",
    )
    with pytest.raises(SettingsError, match=r"FORMS_HANDBOOK_URL .*old-handbook"):
        load_settings(env_file=None, environ=elsewhere)
    agreeing = production(
        tmp_path,
        FORMS_SITE_URL="https://handbook.example.org/",
        FORMS_HANDBOOK_URL="https://handbook.example.org/",
    )
    assert load_settings(env_file=None, environ=agreeing).handbook_url == (
        "https://handbook.example.org/"
    )
