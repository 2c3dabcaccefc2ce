"""Every rule in the group's own guidelines reaches the handbook, in the words a reader sees.

Each row names a rule of `shared/seed/peer-support-guidelines.txt`, the page that carries it and
a phrase from that page. Rewording a page is fine; dropping or softening a rule fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from tests.handbook_pages import url_path_for

RULES = [
    (
        "Principles intro: peer support only works when we are all involved",
        "guidelines/principles.md",
        "Peer support only works when we are all involved",
    ),
    (
        "Principles intro: give and get support from peers",
        "guidelines/principles.md",
        "We all give and get support from each other",
    ),
    (
        "Principles intro: the principles we build our groups on",
        "guidelines/principles.md",
        "These are the principles we build our group on",
    ),
    ("Trust", "guidelines/principles.md", "feeling safe and having confidence in the group"),
    (
        "Hope: achieve your goals",
        "guidelines/principles.md",
        "Hope means feeling that you can reach your goals",
    ),
    (
        "Hope: recovery is possible",
        "guidelines/principles.md",
        "It means believing that recovery is possible",
    ),
    (
        "Diversity: different experiences, perspectives, opinions",
        "guidelines/principles.md",
        "different experiences, perspectives and opinions",
    ),
    (
        "Diversity: value those differences",
        "guidelines/principles.md",
        "Diversity means we value those differences",
    ),
    ("Empathy", "guidelines/principles.md", "we understand and share what others feel"),
    (
        "Mutual Benefit: share and encourage others to share",
        "guidelines/principles.md",
        "we share, and we encourage others to share",
    ),
    (
        "Mutual Benefit: give and get support",
        "guidelines/principles.md",
        "That way we can all give and get support",
    ),
    (
        "Each of us responsible for our own safety",
        "guidelines/taking-part.md",
        "each of us is responsible for our own safety",
    ),
    ("Focus on the here and now", "guidelines/taking-part.md", "always focus on the here and now"),
    (
        "Do not delve into past events or traumas",
        "guidelines/taking-part.md",
        "Do not go into past events or traumas",
    ),
    (
        "Ok to say you find that triggering",
        "guidelines/taking-part.md",
        "it is ok to say you find that triggering",
    ),
    (
        "Ok to step out of the group",
        "guidelines/taking-part.md",
        "It is also ok to step out of the group",
    ),
    (
        "Step out or leave: message facilitators",
        "guidelines/taking-part.md",
        "If you step out of the group, or leave",
    ),
    (
        "... so we can make sure you are safe",
        "guidelines/taking-part.md",
        "so we can make sure you are safe",
    ),
    (
        "Leave notice option for leaving early",
        "guidelines/taking-part.md",
        'and choose "I left a session early"',
    ),
    (
        "No pressure to talk",
        "guidelines/taking-part.md",
        "During the meeting there is no pressure to talk",
    ),
    (
        "Draw strength from people who understand",
        "guidelines/taking-part.md",
        "draw strength just by being with people who understand",
    ),
    ("Camera not required", "guidelines/taking-part.md", "There is no need to have your camera on"),
    (
        "Camera: any reason is ok",
        "guidelines/taking-part.md",
        "prefer not to, for any reason, that is ok",
    ),
    (
        "All here for the same reasons",
        "guidelines/taking-part.md",
        "We are all here for the same reasons",
    ),
    (
        "To get support and learn from each other",
        "guidelines/taking-part.md",
        "to get support and learn from each other",
    ),
    (
        "Ok to have different experiences and perspectives",
        "guidelines/taking-part.md",
        "ok for us all to have different experiences and perspectives",
    ),
    ("Be respectful of others", "guidelines/taking-part.md", "Please be respectful of others"),
    (
        "Talk with them, not over them",
        "guidelines/taking-part.md",
        "Remember to talk with people, not over them",
    ),
    (
        "Offer support rather than advice",
        "guidelines/taking-part.md",
        "Please offer support rather than advice",
    ),
    (
        "Support vs advice example",
        "guidelines/taking-part.md",
        "Advice tells someone what they should do",
    ),
    (
        "Inclusive group",
        "guidelines/taking-part.md",
        "We are committed to this being an inclusive group",
    ),
    (
        "Offensive or discriminatory language: may be asked to leave",
        "guidelines/taking-part.md",
        "offensive or discriminatory language may be asked to leave",
    ),
    (
        "Private and confidential to the group",
        "guidelines/confidentiality.md",
        "is private and confidential to the group",
    ),
    (
        "Fine to discuss topics with support network or therapist",
        "guidelines/confidentiality.md",
        "with your support network or therapist",
    ),
    (
        "Respect the confidentiality of the group",
        "guidelines/confidentiality.md",
        "please respect the confidentiality of the group",
    ),
    (
        "Refrain from sharing personal information",
        "guidelines/confidentiality.md",
        "Do not share other members",
    ),
    (
        "Conversations with facilitators held in confidence unless law",
        "guidelines/confidentiality.md",
        "are held in confidence unless the law requires",
    ),
    (
        "Concerns about topics or someone in the group",
        "guidelines/safeguarding.md",
        "concerns about topics raised in the group, or about someone",
    ),
    (
        "Message the facilitators at any time",
        "guidelines/safeguarding.md",
        "you can message the facilitators at any time",
    ),
    (
        "Concern form can be anonymous",
        "guidelines/safeguarding.md",
        "You do not have to give your name",
    ),
    (
        "Conversations held in confidence unless required by law",
        "guidelines/safeguarding.md",
        "Any conversations will be held in confidence unless the law",
    ),
    (
        "Concern about a facilitator goes to safeguarding lead",
        "guidelines/safeguarding.md",
        "Do not send it to the facilitators",
    ),
    (
        "Someone at risk of harm: safeguarding policy will be used",
        "guidelines/safeguarding.md",
        "our safeguarding policy will be used",
    ),
    (
        "Yourself or another adult/child",
        "guidelines/safeguarding.md",
        "or to another adult or a child",
    ),
    (
        "Speak with you privately about any concerns",
        "guidelines/safeguarding.md",
        "We will speak with you privately about any concerns",
    ),
    (
        "Discuss any further options",
        "guidelines/safeguarding.md",
        "We will talk with you about any further options",
    ),
    (
        "Contact details kept securely under GDPR",
        "guidelines/confidentiality.md",
        "We keep your contact details securely, in line with GDPR",
    ),
    (
        "Not shared without permission except law or safeguarding",
        "guidelines/confidentiality.md",
        "except if the law or safeguarding requires it",
    ),
    (
        "Contact details kept securely under GDPR (also)",
        "guidelines/safeguarding.md",
        "We keep your contact details securely, in line with GDPR",
    ),
    ("Attend as long as you need to", "guidelines/attendance.md", "for as long as you need to"),
    (
        "No restriction on how long",
        "guidelines/attendance.md",
        "There is no limit on how long you can attend",
    ),
    (
        "At least six sessions",
        "guidelines/attendance.md",
        "We advise you to come to at least six sessions",
    ),
    (
        "Advise us if you intend to leave",
        "guidelines/attendance.md",
        "Please tell us if you intend to leave",
    ),
    (
        "So we can offer your place to someone else",
        "guidelines/attendance.md",
        "so we can offer your place to someone else",
    ),
    (
        "Three meetings in a row without advising us",
        "guidelines/attendance.md",
        "three meetings in a row without telling us",
    ),
    (
        "May be removed from the group",
        "guidelines/attendance.md",
        "you may be removed from the group",
    ),
    (
        "Missing sessions option counts as telling us",
        "guidelines/attendance.md",
        "This counts as telling us",
    ),
    ("Online: safe space", "guidelines/online-safety.md", "We want the group to be a safe space"),
    (
        "Online: everyone responsible for own online safety",
        "guidelines/online-safety.md",
        "responsible for their own online safety",
    ),
    (
        "Link confidential to this group",
        "guidelines/online-safety.md",
        "The meeting link is confidential to this group",
    ),
    (
        "Link must not be shared",
        "guidelines/online-safety.md",
        "It must not be shared with any other person",
    ),
    ("Anonymous name allowed", "guidelines/online-safety.md", "you can choose an anonymous name"),
    (
        "Tell facilitators so they know you attended",
        "guidelines/online-safety.md",
        "so we know you have attended the group",
    ),
    (
        "Private space, not heard by household",
        "guidelines/online-safety.md",
        "nobody else in your household can hear the group",
    ),
    (
        "Headphones suggested",
        "guidelines/online-safety.md",
        "Headphones or earphones can help with this",
    ),
    (
        "We will not record sessions or save chats",
        "guidelines/online-safety.md",
        "We will not record sessions or save chats",
    ),
    (
        "You must not record, save chats or screenshot",
        "guidelines/online-safety.md",
        "You must not record the sessions, save chats or screenshot",
    ),
    (
        "No alcohol or substance misuse",
        "guidelines/online-safety.md",
        "do not drink alcohol or misuse substances before or during",
    ),
    (
        "Arrive a few minutes early",
        "guidelines/online-safety.md",
        "a few minutes early so we can start on time",
    ),
    (
        "We lock the meeting when it starts",
        "guidelines/online-safety.md",
        "We will lock the meeting when it starts",
    ),
    ("What locking means", "guidelines/online-safety.md", "you may not be able to get in"),
    ("Removal: safe space", "guidelines/removal.md", "We want the group to be a safe space"),
    (
        "Removal: everyone keeps it safe and supportive",
        "guidelines/removal.md",
        "responsible for keeping the group safe and supportive",
    ),
    (
        "Removal: may ask someone to leave",
        "guidelines/removal.md",
        "we need to ask someone to leave the group",
    ),
    (
        "Removal: temporarily or permanently",
        "guidelines/removal.md",
        "This may be for a while, or for good",
    ),
    (
        "Removal: 1-1 conversation",
        "guidelines/removal.md",
        "Many issues can be sorted out by a 1-1 conversation",
    ),
    (
        "Removal: aim to resolve and return",
        "guidelines/removal.md",
        "We always aim to resolve issues and welcome you back",
    ),
    (
        "Removal: not limited to",
        "guidelines/removal.md",
        "Reasons for removal include, but are not limited to",
    ),
    (
        "Reason: abusive or offensive language",
        "guidelines/removal.md",
        "abusive or offensive language or comments",
    ),
    (
        "Reason: talking over others",
        "guidelines/removal.md",
        "repeatedly talking over others who are speaking",
    ),
    (
        "Reason: distressing topics",
        "guidelines/removal.md",
        "speaking about topics which others find distressing",
    ),
    ("Reason: unsafe", "guidelines/removal.md", "if we feel you or someone around you is unsafe"),
    (
        "Reason: complaint",
        "guidelines/removal.md",
        "if we receive a complaint from another group member",
    ),
    (
        "Reason: unhealthy coping / not medically proven",
        "guidelines/removal.md",
        "unhealthy coping methods or treatments that are not medically proven",
    ),
    (
        "Reason: microdosing / illegal substances",
        "guidelines/removal.md",
        "such as microdosing or using illegal substances",
    ),
    (
        "Reason: three missed meetings",
        "guidelines/removal.md",
        "missing three meetings in a row without telling us",
    ),
    (
        "Consent form includes agreeing to guidelines",
        "guidelines/index.md",
        "you agree to each part of these guidelines",
    ),
    (
        "A concern about a facilitator goes to the safeguarding lead",
        "guidelines/safeguarding.md",
        "If your concern is about a facilitator",
    ),
]


def visible_text(site_dir: Path, source: str) -> str:
    html = (site_dir / url_path_for(source) / "index.html").read_text("utf-8")
    article = BeautifulSoup(html, "html.parser").select_one("article")
    assert article is not None, source
    return re.sub(r"\s+", " ", article.get_text(" "))


@pytest.mark.parametrize(("rule", "source", "phrase"), RULES, ids=[row[0] for row in RULES])
def test_the_rule_is_on_its_page(site_dir: Path, rule: str, source: str, phrase: str) -> None:
    assert phrase in visible_text(site_dir, source), f"{rule}: not found on {source}"


def test_every_removal_reason_in_the_guidelines_is_covered() -> None:
    removal_phrases = " ".join(
        phrase for _, source, phrase in RULES if source.endswith("removal.md")
    )
    for reason in (
        "abusive or offensive language",
        "talking over others",
        "others find distressing",
        "unsafe",
        "complaint from another group member",
        "not medically proven",
        "microdosing",
    ):
        assert reason in removal_phrases, reason
