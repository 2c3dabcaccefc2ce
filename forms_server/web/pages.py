"""What every page of the server shares: its context (the services and the settings), its
templates in the handbook's look, and how a page is rendered (never cached: it may show what a
member typed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from forms_server.config.env import Settings
from forms_server.config.group import PACKAGE_DIR
from forms_server.delivery.member_copy import MESSAGE_ALERT_SUBJECT
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import FormDefinition
from forms_server.forms.reference import EXAMPLE_REFERENCE
from forms_server.handbook.guidelines import GuidelinesVersion
from forms_server.handbook.search import Section
from forms_server.handbook.sources import layers
from forms_server.links import Links
from forms_server.services import Services
from forms_server.signing import Signer
from forms_server.web.attempts import AttemptWaits
from forms_server.web.drafts import Drafts
from forms_server.web.limits import PostLimits, ReadLimit

NO_STORE = {"Cache-Control": "no-store"}


class FormsUnavailableError(Exception):
    """The forms cannot be saved right now (the data folder); the handbook still serves."""


@dataclass(frozen=True)
class FormsContext:
    settings: Settings
    templates: Jinja2Templates
    # Signing needs only the settings: drafts and check pages work whatever the data folder.
    signer: Signer
    links: Links
    guidelines: GuidelinesVersion
    limits: PostLimits
    drafts: Drafts
    # How often one link-only link may show its form (a leaked link is limited).
    read_limit: ReadLimit
    # None when the data folder could not be opened: then `unavailable` says why.
    services: Services | None
    unavailable: str | None = None
    # Every section of every handbook page, from the built site's search.json.
    search_sections: Sequence[Section] = ()
    # Words of someone who may need help now: their search puts "Get help now" first.
    crisis_words: Sequence[tuple[str, ...]] = ()
    # Failed tries to open a conversation: growing waits per reference and per network.
    attempts: AttemptWaits = field(default_factory=AttemptWaits)

    @property
    def forms(self) -> Services:
        """The services, or FormsUnavailableError: the page then says the forms cannot be
        saved right now, and keeps what was typed."""
        if self.services is None or self.cannot_save is not None:
            raise FormsUnavailableError(self.cannot_save or "")
        return self.services

    @property
    def cannot_save(self) -> str | None:
        """Why forms cannot be saved now, if they cannot (the worker probes the folder)."""
        if self.services is None:
            return self.unavailable or "the data folder cannot be used"
        return self.services.worker.folder_problem


def make_templates(settings: Settings, stylesheets: list[str]) -> Jinja2Templates:
    environment = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(PACKAGE_DIR / "templates"),
                # The handbook's own quick exit partial, so both use the very same markup.
                *(
                    FileSystemLoader(layer / "overrides")
                    for layer in layers(settings.handbook_config)
                ),
            ]
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        group=settings.group,
        handbook_url=settings.handbook_url,
        example_reference=EXAMPLE_REFERENCE,
        # The member's alert, quoted on the pages as the email's subject says it.
        message_alert_subject=MESSAGE_ALERT_SUBJECT,
        theme={"stylesheets": stylesheets},
        # The quick exit partial is written for MkDocs, which names the facts config.extra.group.
        config={"extra": {"group": settings.group}},
    )
    return Jinja2Templates(env=environment)


def context_of(request: Request) -> FormsContext:
    context: FormsContext = request.app.state.forms
    return context


def form_for(kind: str) -> FormDefinition:
    form = FORMS.get(kind)
    if form is None:
        raise HTTPException(404)
    return form


def render(request: Request, template: str, status_code: int = 200, **values: object) -> Response:
    return render_values(request, template, values, status_code)


def render_values(
    request: Request, template: str, values: Mapping[str, object], status_code: int = 200
) -> Response:
    return context_of(request).templates.TemplateResponse(
        request, template, dict(values), status_code=status_code, headers=NO_STORE
    )


def link_refused(request: Request, *paragraphs: str) -> Response:
    """A private link that is altered, expired or for something else: say so, and what to do."""
    return render(
        request,
        "problem.html",
        status_code=400,
        title="This link no longer works",
        paragraphs=list(paragraphs),
        start_again_url=None,
    )


def expired_page(request: Request) -> Response:
    """What a step of a draft the member left with quick exit shows: nothing of theirs."""
    return render(
        request,
        "problem.html",
        status_code=410,
        title="This page has expired",
        paragraphs=["This page is no longer available."],
        start_again_url=context_of(request).settings.handbook_url,
        start_again_text="Go to the start",
    )
