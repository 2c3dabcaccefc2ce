"""Who receives what: the addresses of each route, as the group decided, and the guards that
keep a facilitator out of the routes that must never reach one."""

from __future__ import annotations

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings

from forms_server.config.decisions import ConcernRoute, Decisions
from forms_server.config.group import SettingsError

DEVELOPMENT_SENDER = "forms@localhost.localdomain"
DEVELOPMENT_SAFEGUARDING = "safeguarding-lead@example.org,safeguarding-deputy@example.org"
# Development only, while the group has not decided: the embedded catcher keeps what is sent.
DEVELOPMENT_FACILITATOR_CONCERNS = "facilitator-concerns@example.org"


def addresses(config: Config, name: str, default: str, why: str = "") -> tuple[str, ...]:
    """`why` says what the addresses are for, so a missing or wrong one says what to set."""
    from forms_server.forms.fields import is_usable_email_address  # one rule for what an address is

    values = tuple(
        value.strip()
        for value in config(name, cast=CommaSeparatedStrings, default=default)
        if value.strip()
    )
    example = "for example someone@your-group.org.uk, comma-separated"
    if not values:
        raise SettingsError(f"{name} needs at least one email address ({example}).{why}")
    for value in values:
        if not is_usable_email_address(value):
            raise SettingsError(f"{name}: {value!r} is not an email address ({example}).{why}")
    return values


def concern_recipients(
    config: Config, environment: str, decisions: Decisions, facilitators: tuple[str, ...]
) -> tuple[str, ...]:
    """Concerns go where the group decided. The guidelines say "message the facilitators", so
    that is what development does while the group has not decided; production must choose."""
    route = decisions.concern_route
    if route is None:
        if environment == "production":
            raise SettingsError(
                "extra.group.decisions.concern_route is not decided. In production, choose who "
                "receives concerns: 'facilitators' (as the guidelines say) or 'safeguarding "
                "lead' (a lead and deputy, whose addresses go in FORMS_SAFEGUARDING)."
            )
        route = ConcernRoute.FACILITATORS
    if route is ConcernRoute.FACILITATORS:
        return facilitators
    return addresses(
        config,
        "FORMS_SAFEGUARDING",
        "" if environment == "production" else DEVELOPMENT_SAFEGUARDING,
        " The group decided that concerns go to a safeguarding lead (extra.group.decisions."
        "concern_route): set the lead's and the deputy's addresses, for example "
        "FORMS_SAFEGUARDING=lead@your-group.org.uk,deputy@your-group.org.uk.",
    )


DEVELOPMENT_ESCALATION = "escalation@example.org"


def never_a_facilitator(
    environment: str,
    decision: str,
    address: str | None,
    development_address: str,
    what_it_receives: str,
    facilitators: tuple[str, ...],
) -> tuple[str, ...]:
    """A decided address that must never be a facilitator's: production needs it decided;
    development uses a placeholder the embedded catcher keeps."""
    if address is None:
        if environment == "production":
            raise SettingsError(
                f"extra.group.decisions.{decision} is not decided. In production, give an "
                f"address that is not a facilitator's: it receives {what_it_receives}."
            )
        address = development_address
    # Email addresses are compared without case: Facilitators@x and facilitators@x are one
    # mailbox everywhere that matters here.
    if address.lower() in {facilitator.lower() for facilitator in facilitators}:
        raise SettingsError(
            f"extra.group.decisions.{decision} must not be a facilitator's address: it "
            f"receives {what_it_receives}."
        )
    return (address,)


def facilitator_concern_recipients(
    environment: str, decisions: Decisions, facilitators: tuple[str, ...]
) -> tuple[str, ...]:
    return never_a_facilitator(
        environment,
        "facilitator_concern_email",
        decisions.facilitator_concern_email,
        DEVELOPMENT_FACILITATOR_CONCERNS,
        "concerns about facilitators, instead of the facilitators",
        facilitators,
    )


def escalation_recipients(
    environment: str, decisions: Decisions, facilitators: tuple[str, ...]
) -> tuple[str, ...]:
    return never_a_facilitator(
        environment,
        "escalation_email",
        decisions.escalation_email,
        DEVELOPMENT_ESCALATION,
        "concerns and urgent notices nobody picked up in time, some of them about facilitators",
        facilitators,
    )
