"""A copy of the group's configuration with every decision made, in words no page has by itself.

Tests use it to check that each decision shows where it should once a group makes it, and that
production starts only with the decisions it needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from forms_server.config.group import PROJECT_ROOT

DECIDED: dict[str, Any] = {
    "concern_route": "safeguarding lead",
    "facilitator_concern_email": "trustees@example.net",
    "escalation_email": "deputy@example.net",
    "escalate_after_minutes": {"urgent": 20, "other": 1440},
    "delivery_mode": {
        "facilitators": "encrypted",
        "concerns": "link-only",
        "escalation": "link-only",
    },
    "read_window_days": 4,
    "draft_idle_minutes": 35,
    "conversation_kept_days": 21,
    "backup_kept_days": 45,
    "reply_within_days": {"consent": 3, "leave": 4, "concern": 2, "rights": 30},
    "retention_months": {"consent": 24, "leave": 9, "concern": 3},
    "lawful_basis": {
        "consent": "Consent basis: your consent (wording C1).",
        "leave": "Leave basis: our legitimate interests (wording L1).",
        "concern": "Concern basis: safeguarding (wording K1).",
    },
    "consent_renewal_months": 18,
    "expiring_consents_email_days": 21,
    "withdrawing_consent": "Withdrawing means you stop coming to meetings (wording W1).",
    "removal_procedure": "A facilitator tells you by email, and why (wording R1).",
    "email_stored_where": "Our email is kept by Example Mail in the UK (wording E1).",
    "mailbox_retention": "We delete form emails after 3 months (wording M1).",
    "safeguarding_policy_url": "https://example.net/safeguarding-policy",
    "cost": "Joining costs nothing (wording $1).",
    "places": "There are 12 places (wording P1).",
    "who_facilitates": "Our facilitators are trained volunteers (wording F1).",
    "how_joining_works": "A facilitator emails you the meeting link (wording J1).",
    "consent_form_and_joining": "You need to sign it before you can come (wording S1).",
    "reasons_for_leaving": "You do not need to give a reason (wording G1).",
    "accessibility_commitment": "We will try to fix it (wording A1).",
}


def group_with(decisions: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    group: dict[str, Any] = config["extra"]["group"]
    return {**group, "decisions": decisions}


def write_group_config(folder: Path, decisions: dict[str, Any]) -> Path:
    """A file the server can take as FORMS_HANDBOOK_CONFIG: only `extra.group`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "group.yml"
    group = group_with(decisions)
    config = {"site_name": f"{group['name']} handbook", "extra": {"group": group}}
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def copy_project(folder: Path, decisions: dict[str, Any] | None = None) -> Path:
    """The handbook's sources in `folder`, with `decisions` in place of the group's own."""
    for name in ("docs", "overrides", "hooks", "includes"):
        shutil.copytree(PROJECT_ROOT / name, folder / name)
    text = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    if decisions is not None:
        start = text.index("    decisions:\n")
        end = text.index("    regulator_name:")
        block = yaml.safe_dump({"decisions": decisions}, sort_keys=False, allow_unicode=True)
        text = text[:start] + "".join(f"    {line}\n" for line in block.splitlines()) + text[end:]
    (folder / "mkdocs.yml").write_text(text, encoding="utf-8")
    return folder
