"""One life for every form: its states, the events that move it, and one table of what each
event does in each state.

A form is a draft (in the member's browser and the server's drafts), then sent: in the outbox,
with each recipient waiting, accepted or failed. Delivered, its minimal record is kept; a concern
or an urgent notice is then watched until someone picks it up, and escalated if nobody does in
time. Link-only content is readable for a window. An erasure may be held back. At the end of its
retention it is gone. Every promise the forms make where two of these meet is a row of `RULES`
(or of `SENDING_RULES`, for how a message goes), tested once each; the worker's jobs, the web
pages and the command line ask `decide` and carry out what it says. None decides on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from forms_server.config.decisions import DeliveryMode
from forms_server.forms.definitions import FORMS


class Event(StrEnum):
    DELIVERED = "every recipient has it and its record is kept"
    REACHED_NOBODY = "every recipient refused it for good"
    FOUND_UNREADABLE = "its file could not be read and was moved aside"
    ESCALATION_DUE = "its time to be picked up has passed"
    PICKED_UP = "someone marked it as being dealt with"
    FOUND_PICKED_UP = "the worker found it marked as being dealt with by another process"
    ERASE_ASKED = "the host asked to erase it (forms-server erase)"
    MEMBER_DELETE = "the member asked to delete it from their own link"
    READ_WINDOW_ENDED = "its link-only read window ended"
    RETENTION_ENDED = "its retention period ended"
    ASKED = "someone who received it asked the member a question"
    ANSWERED = "the member answered a question"
    CONVERSATION_DELETED = "the member deleted their conversation about it"
    CONVERSATION_QUIET = "its conversation has had no message for the days the group keeps it"


class Do(StrEnum):
    """What carrying out a rule does (storage/form_files.py does it), in the rule's order:
    whoever must be told is told before the files that say who had it go."""

    START_WATCH = "start the timer for picking it up"
    ESCALATE_NOW = "send it to the escalation contact now"
    STOP_WATCH = "stop the escalation timer"
    TELL_EVERYONE_REACHED = "tell everyone it reached, the escalation contact included"
    HOLD_ERASURE = "hold the erasure back until it is picked up or its retention ends"
    FINISH_HELD_ERASURE = "carry out a held erasure and tell those it reached"
    WAIT_FOR_DELIVERY = "leave it: it is still being delivered"
    ERASE = "erase everything held about it now"
    KEEP_READABLE = "keep its link-only content readable"
    ERASE_READABLE = "erase its link-only content"
    FORGET_NOTES = "forget what is left about it (the watch note, who read it)"
    TELL_THE_MEMBER = 'email the member "There is a message for you", if they asked for it'
    CLOSE_CONVERSATION = (
        "close the conversation to the member, and keep it for those the form went to"
    )
    FORGET_CONVERSATION = "delete the conversation"
    FORGET_CLOSED_CONVERSATION = "delete the conversation, if the member has closed it"


def needs_picking_up(form_kind: str, urgent: bool) -> bool:
    """A concern, or anything urgent: someone must mark it as being dealt with."""
    form = FORMS.get(form_kind)
    return urgent or (form is not None and form.decision_group == "concern")


@dataclass(frozen=True)
class FormState:
    """What the rules need to know about one form, read from its files."""

    reference: str
    form_kind: str
    urgent: bool
    # A concern or an urgent notice: someone must pick it up.
    needs_picking_up: bool
    # Still in the outbox: some recipient has not got it yet.
    being_delivered: bool = False
    picked_up: bool = False
    escalated: bool = False
    erasure_held: bool = False
    # When its record's retention ends (a held erasure completes then at the latest).
    kept_until: datetime | None = None

    @property
    def waiting_for_someone(self) -> bool:
        """Someone may be at risk and nobody has picked it up yet."""
        return self.needs_picking_up and not self.picked_up


@dataclass(frozen=True)
class Rule:
    name: str
    event: Event
    applies: Callable[[FormState], bool]
    then: tuple[Do, ...]


def always(_: FormState) -> bool:
    return True


RULES: tuple[Rule, ...] = (
    # Delivered
    Rule(
        "a concern or urgent notice waits to be picked up",
        Event.DELIVERED,
        lambda form: form.needs_picking_up and not form.picked_up,
        (Do.START_WATCH,),
    ),
    Rule("anything else is done once delivered", Event.DELIVERED, always, ()),
    # Reached nobody, or could not be read
    Rule(
        "an urgent form that reached nobody escalates at once",
        Event.REACHED_NOBODY,
        lambda form: form.urgent,
        (Do.ESCALATE_NOW,),
    ),
    Rule("another form that reached nobody waits for the host", Event.REACHED_NOBODY, always, ()),
    Rule(
        "a damaged file that says urgent escalates at once",
        Event.FOUND_UNREADABLE,
        lambda form: form.urgent,
        (Do.ESCALATE_NOW,),
    ),
    Rule("another damaged file waits for the host", Event.FOUND_UNREADABLE, always, ()),
    # A conversation with the member: asking is not picking it up, so nothing stops the timer
    # (only "Mark as being dealt with" does); the member's answer goes to everyone it reached
    # (the answers job), and changes nothing else.
    Rule(
        "asking is not picking it up; the member hears of it only if they asked",
        Event.ASKED,
        always,
        (Do.TELL_THE_MEMBER,),
    ),
    Rule("an answer changes nothing else", Event.ANSWERED, always, ()),
    Rule(
        # Link-only, the member's answers are readable nowhere else.
        "a member's delete of a conversation nobody has picked up keeps it for the group",
        Event.CONVERSATION_DELETED,
        lambda form: form.waiting_for_someone,
        (Do.CLOSE_CONVERSATION,),
    ),
    Rule(
        "a member's delete of a conversation is done at once",
        Event.CONVERSATION_DELETED,
        always,
        (Do.FORGET_CONVERSATION,),
    ),
    Rule(
        "a hold-back keeps the conversation too",
        Event.CONVERSATION_QUIET,
        lambda form: form.waiting_for_someone,
        (),
    ),
    Rule("a quiet conversation ends", Event.CONVERSATION_QUIET, always, (Do.FORGET_CONVERSATION,)),
    # Escalation
    Rule(
        "a form picked up in time never escalates",
        Event.ESCALATION_DUE,
        lambda form: form.picked_up,
        (Do.STOP_WATCH,),
    ),
    Rule(
        "a form nobody picked up in time goes to the escalation contact",
        Event.ESCALATION_DUE,
        always,
        (Do.ESCALATE_NOW,),
    ),
    # Picking up
    Rule(
        "a pick-up ends a held erasure",
        Event.PICKED_UP,
        lambda form: form.erasure_held,
        (Do.TELL_EVERYONE_REACHED, Do.FINISH_HELD_ERASURE, Do.STOP_WATCH),
    ),
    Rule(
        "a pick-up tells everyone it reached, the escalation contact included",
        Event.PICKED_UP,
        always,
        (Do.TELL_EVERYONE_REACHED, Do.STOP_WATCH, Do.FORGET_CLOSED_CONVERSATION),
    ),
    Rule(
        "a pick-up made elsewhere ends a held erasure too",
        Event.FOUND_PICKED_UP,
        lambda form: form.erasure_held,
        (Do.FINISH_HELD_ERASURE, Do.STOP_WATCH),
    ),
    Rule(
        "a pick-up made elsewhere stops the timer",
        Event.FOUND_PICKED_UP,
        always,
        (Do.STOP_WATCH, Do.FORGET_CLOSED_CONVERSATION),
    ),
    # Erasure
    Rule(
        "hold-back beats erasure",
        Event.ERASE_ASKED,
        lambda form: form.waiting_for_someone,
        (Do.HOLD_ERASURE,),
    ),
    Rule(
        "a form on its way is erased once delivered, when asked again",
        Event.ERASE_ASKED,
        lambda form: form.being_delivered,
        (Do.WAIT_FOR_DELIVERY,),
    ),
    Rule("anything else is erased when the host asks", Event.ERASE_ASKED, always, (Do.ERASE,)),
    Rule(
        "a member's delete of a form nobody has picked up happens at pick-up",
        Event.MEMBER_DELETE,
        lambda form: form.waiting_for_someone,
        (Do.HOLD_ERASURE,),
    ),
    Rule("a member's delete is done at once", Event.MEMBER_DELETE, always, (Do.ERASE,)),
    # Time
    Rule(
        "a hold-back keeps the form readable by everyone it went to",
        Event.READ_WINDOW_ENDED,
        lambda form: form.waiting_for_someone,
        (Do.KEEP_READABLE,),
    ),
    Rule(
        "link-only content goes when its window ends",
        Event.READ_WINDOW_ENDED,
        always,
        (Do.ERASE_READABLE,),
    ),
    Rule(
        "a held erasure completes when retention ends, at the latest",
        Event.RETENTION_ENDED,
        lambda form: form.erasure_held,
        (Do.FINISH_HELD_ERASURE, Do.STOP_WATCH, Do.FORGET_NOTES),
    ),
    Rule(
        "nothing outlives its retention, escalated or not",
        Event.RETENTION_ENDED,
        always,
        (Do.STOP_WATCH, Do.ERASE, Do.FORGET_NOTES),
    ),
)


def decide(form: FormState, event: Event) -> Rule:
    """The first rule for this event that applies to the form: every event has a last rule
    that always applies."""
    return next(rule for rule in RULES if rule.event is event and rule.applies(form))


# -- How a message goes -------------------------------------------------------------------------


class Batch(StrEnum):
    ALONE = "on its own, now"
    DIGEST = "in the next digest (every few minutes)"
    URGENT_DIGEST = "in the next urgent-only digest (every minute)"


@dataclass(frozen=True)
class SendState:
    """One message waiting for one recipient, and how many that recipient has just had."""

    urgent: bool
    mode: DeliveryMode
    sent_last_hour: int
    urgent_alone_last_hour: int


@dataclass(frozen=True)
class FloodLimits:
    # Past this many messages to one address in an hour, ordinary forms come in digests.
    alone_per_hour: int = 30
    # Urgent forms go alone up to this many an hour per address, then in urgent-only digests.
    urgent_alone_per_hour: int = 20


@dataclass(frozen=True)
class SendingRule:
    name: str
    applies: Callable[[SendState, FloodLimits], bool]
    batch: Batch


SENDING_RULES: tuple[SendingRule, ...] = (
    SendingRule(
        # A digest would put the answers back in a mailbox that was meant to hold none.
        "link-only and encrypted mail is never put in a digest",
        lambda send, _: send.mode is not DeliveryMode.FULL,
        Batch.ALONE,
    ),
    SendingRule(
        "urgent never waits for a digest",
        lambda send, limits: (
            send.urgent and send.urgent_alone_last_hour < limits.urgent_alone_per_hour
        ),
        Batch.ALONE,
    ),
    SendingRule(
        "a flood of urgent forms cannot bury the real one: urgent-only digests, every minute",
        lambda send, _: send.urgent,
        Batch.URGENT_DIGEST,
    ),
    SendingRule(
        "a flood cannot bury an inbox: past the hourly rate, ordinary forms come together",
        lambda send, limits: send.sent_last_hour >= limits.alone_per_hour,
        Batch.DIGEST,
    ),
    SendingRule("anything else goes on its own", lambda send, limits: True, Batch.ALONE),
)


def how_to_send(send: SendState, limits: FloodLimits) -> SendingRule:
    return next(rule for rule in SENDING_RULES if rule.applies(send, limits))


STRICTNESS = (DeliveryMode.FULL, DeliveryMode.ENCRYPTED, DeliveryMode.LINK_ONLY)


def strictest(modes: Iterable[DeliveryMode]) -> DeliveryMode:
    """An escalation is never less private than the form's route: the strictest mode of every
    route the message stands for."""
    return max(modes, key=STRICTNESS.index, default=DeliveryMode.FULL)


def priority(urgent: bool, received_at: datetime) -> tuple[bool, datetime]:
    """Urgent first, then oldest first: the order every job takes forms in."""
    return (not urgent, received_at)
