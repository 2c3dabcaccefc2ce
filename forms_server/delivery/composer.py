"""The message each person gets, in the mode their route says: the form itself, its escalation,
the member's own copy, a digest, a notice or a reminder. Sending is the relay's (mail/relay.py);
choosing what to send when is the jobs'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from email.message import EmailMessage

from forms_server.config.decisions import DeliveryMode
from forms_server.config.mail import MailSettings
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import DELIVERY_ROUTE_OF, Recipients, Submission
from forms_server.forms.routing import COPY_FULL, member_copy_wanted, recipients_for
from forms_server.lifecycle import strictest
from forms_server.links import Links
from forms_server.mail.crypto import RecipientKey, RecipientKeyError, encrypt_for
from forms_server.mail.messages import (
    Envelope,
    MessageBuildError,
    TransientDeliveryError,
    build_answer,
    build_digest,
    build_link_only,
    build_member_copy,
    build_message,
    build_message_alert,
    build_notice,
    build_renewal_reminder,
    build_unreadable_escalation,
    new_message_id,
)
from forms_server.mail.relay import Relay
from forms_server.storage.conversation_items import Conversation
from forms_server.storage.folder_store import SealedForm
from forms_server.storage.outbox_items import MEMBER_COPY
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.records import StoredRecord
from forms_server.storage.sealing import Sealer

Clock = Callable[[], datetime]

# The routes forms take, as the group's delivery decision names them.
ESCALATION_ROUTE = "escalation"
ESCALATION_PREFIX = "NOBODY HAS PICKED THIS UP - "


def recipient_addresses(mail: MailSettings, route: Recipients) -> tuple[str, ...]:
    return {
        Recipients.FACILITATORS: mail.facilitators,
        Recipients.CONCERNS: mail.concerns,
        Recipients.FACILITATOR_CONCERNS: mail.facilitator_concerns,
    }[route]


def addresses_by_route(mail: MailSettings, routes: Iterable[str]) -> tuple[str, ...]:
    """One address per person on the routes a form went to (by role, as its files keep
    them); a role no longer known is left out."""
    known = {member.value for member in Recipients}
    return tuple(
        dict.fromkeys(
            address
            for route in routes
            if route in known
            for address in recipient_addresses(mail, Recipients(route))
        )
    )


def open_submission(sealer: Sealer, form: SealedForm) -> Submission:
    """The submission a pending, watched or link-only form holds, unsealed."""
    opened = sealer.open(form.reference, form.sealed)
    return Submission(
        reference=form.reference,
        form_kind=form.form_kind,
        answers=opened["answers"],
        received_at=form.received_at,
        urgent=form.urgent,
        guidelines_version=opened.get("guidelines_version"),
        suspected_automated=bool(opened.get("suspected_automated")),
        replaces=opened.get("replaces"),
    )


class Composer:
    def __init__(
        self,
        relay: Relay,
        group_name: str,
        links: Links,
        reading: ReadingRoom,
        sealer: Sealer,
        recipient_keys: Mapping[str, RecipientKey],
        clock: Clock,
    ) -> None:
        self.relay = relay
        self.group_name = group_name
        self.links = links
        self.reading = reading
        self.sealer = sealer
        self.recipient_keys = {address.lower(): key for address, key in recipient_keys.items()}
        self.clock = clock

    @property
    def mail(self) -> MailSettings:
        return self.relay.mail

    def submission_of(self, form: SealedForm) -> Submission:
        return open_submission(self.sealer, form)

    def envelope(
        self, address: str, message_id: str | None = None, sent_at: datetime | None = None
    ) -> Envelope:
        """One message to `address` from this service: a new identity unless the outbox
        already gave it one (so a retry is the same message), made now unless said."""
        return Envelope(
            recipient=address,
            message_id=message_id or new_message_id(self.mail.sender),
            mail=self.mail,
            group_name=self.group_name,
            sent_at=sent_at or self.clock(),
        )

    # -- Who and how -------------------------------------------------------------------------

    def addressed(self, submission: Submission) -> tuple[str, tuple[str, ...]]:
        """The form's route by role ("concerns"), and one address per person on it."""
        routes = recipients_for(FORMS[submission.form_kind], submission.answers)
        addresses = dict.fromkeys(
            address for route in routes for address in recipient_addresses(self.mail, route)
        )
        return "+".join(route.value for route in routes), tuple(addresses)

    def route_addresses(self, route: str) -> tuple[str, ...]:
        if route == ESCALATION_ROUTE:
            return self.mail.escalation
        try:
            return recipient_addresses(self.mail, Recipients(route))
        except ValueError:
            return ()  # the member's copy, or a route this version does not know

    def mode_for(
        self, routes: Iterable[str], address: str, also: Iterable[str] = ()
    ) -> DeliveryMode:
        """The mode this address gets: the strictest of the routes it receives the form by (and
        of the routes in `also`, whoever they go to); encrypted, for someone without a usable
        key, is link-only (never plain text)."""
        modes = [
            self.mail.modes.get(DELIVERY_ROUTE_OF.get(route, route), DeliveryMode.FULL)
            for route in routes
            if address in self.route_addresses(route)
        ] + [
            self.mail.modes.get(DELIVERY_ROUTE_OF.get(route, route), DeliveryMode.FULL)
            for route in also
        ]
        mode = strictest(modes)
        if mode is DeliveryMode.ENCRYPTED:
            key = self.recipient_keys.get(address.lower())
            usable = key is not None and (key.expires_at is None or key.expires_at > self.clock())
            return DeliveryMode.ENCRYPTED if usable else DeliveryMode.LINK_ONLY
        return mode

    def escalation_mode(self, watched: SealedForm, address: str) -> DeliveryMode:
        """Never less private than the route the form first took (a form that cannot be
        opened is treated as the strictest: it is never put in a digest)."""
        try:
            submission = self.submission_of(watched)
        except FormsServerError:
            return DeliveryMode.LINK_ONLY
        form = FORMS[submission.form_kind]
        routes = [route.value for route in recipients_for(form, submission.answers)]
        return self.mode_for([ESCALATION_ROUTE], address, also=routes)

    # -- Messages ----------------------------------------------------------------------------

    def form_message(
        self, submission: Submission, address: str, message_id: str, mode: DeliveryMode, sealed: str
    ) -> EmailMessage:
        """The form for one recipient, in their mode."""
        now = self.clock()
        acknowledge_url = self.links.acknowledge(submission, address)
        envelope = self.envelope(address, message_id, now)
        if mode is DeliveryMode.LINK_ONLY:
            try:
                readable = self.reading.keep(
                    submission.reference, submission.form_kind, submission.urgent, now, sealed
                )
            except OSError as error:
                # This recipient's message waits and is tried again; the others go now.
                raise TransientDeliveryError(
                    f"The form could not be kept for its link ({type(error).__name__})."
                ) from error
            read_url = self.links.read(submission.reference, submission.form_kind, address)
            return build_link_only(submission, envelope, read_url, readable.until, acknowledge_url)
        encrypted = mode is DeliveryMode.ENCRYPTED
        message = build_message(submission, envelope, acknowledge_url, reply_header=not encrypted)
        if encrypted:
            try:
                return encrypt_for(message, self.recipient_keys[address.lower()])
            except RecipientKeyError as error:
                raise MessageBuildError(str(error)) from error
        return message

    def for_recipient(
        self, submission: Submission, address: str, message_id: str, route: str, sealed: str
    ) -> tuple[str, EmailMessage]:
        """The address and message for one recipient of a form: the member's copy is built
        from the answers it stands for; everyone else gets the form, in their route's mode."""
        if address == MEMBER_COPY:
            return self.member_copy(submission, message_id)
        mode = self.mode_for(route.split("+"), address)
        return address, self.form_message(submission, address, message_id, mode, sealed)

    def member_copy(self, submission: Submission, message_id: str) -> tuple[str, EmailMessage]:
        wanted = member_copy_wanted(FORMS[submission.form_kind], submission.answers)
        if wanted is None:
            raise MessageBuildError("The member's copy has no address.")
        kind, address = wanted
        now = self.clock()
        link, until = self.links.yours(submission.reference, submission.form_kind, now)
        copy = build_member_copy(
            submission,
            self.envelope(address, message_id, now),
            link,
            until,
            with_answers=kind == COPY_FULL,
        )
        return address, copy

    def escalation(
        self, watched: SealedForm, address: str, message_id: str, unreadable: bool
    ) -> EmailMessage:
        """The form again, for the escalation contact, never less private than its route."""
        try:
            submission = self.submission_of(watched)
        except FormsServerError:
            if not unreadable:
                raise
            return build_unreadable_escalation(
                watched.reference,
                watched.form_kind,
                watched.received_at,
                self.envelope(address, message_id),
            )
        mode = self.escalation_mode(watched, address)
        message = self.form_message(submission, address, message_id, mode, watched.sealed)
        subject = str(message["Subject"])
        message.replace_header("Subject", f"{ESCALATION_PREFIX}{subject}")
        return message

    def answer(
        self,
        conversation: Conversation,
        answer: str,
        address: str,
        message_id: str,
        link_days: int,
    ) -> EmailMessage:
        """The member's answer for one recipient, in the mode their route takes: in full, as a
        fresh link only, or encrypted to their key."""
        mode = self.mode_for(conversation.routes, address)
        form = FORMS.get(conversation.form_kind)
        name = form.email_name if form else "A form"
        ask_url = self.links.ask(conversation.reference, conversation.form_kind, address)
        envelope = self.envelope(address, message_id)
        shown = None if mode is DeliveryMode.LINK_ONLY else answer
        message = build_answer(envelope, conversation.reference, name, shown, ask_url, link_days)
        if mode is DeliveryMode.ENCRYPTED:
            try:
                return encrypt_for(message, self.recipient_keys[address.lower()])
            except RecipientKeyError as error:
                raise MessageBuildError(str(error)) from error
        return message

    def message_alert(self, address: str, message_id: str) -> EmailMessage:
        """ "There is a message for you", to a member who asked for it: nothing more."""
        return build_message_alert(self.envelope(address, message_id))

    def digest(
        self, submissions: list[Submission], address: str, alone_per_hour: int, escalation: bool
    ) -> EmailMessage:
        return build_digest(submissions, self.envelope(address), alone_per_hour, escalation)

    def notice(self, subject: str, text: str, address: str) -> EmailMessage:
        return build_notice(subject, text, self.envelope(address))

    def renewal_reminder(
        self, record: StoredRecord, lapses: datetime, address: str
    ) -> EmailMessage:
        return build_renewal_reminder(
            record, lapses, self.envelope(address), self.links.renew(record.reference)
        )
