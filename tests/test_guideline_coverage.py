"""Every sentence of the group's own guidelines reaches the handbook with the same force.

The sentences come from the guidelines themselves (`tests/data/peer-support-guidelines.txt`, a
copy of the group's document): each one must be claimed by a row below, each row's phrases must
be on the built page (or the rendered form) it names, and the words that carry a rule's force
stay as the guidelines have them: a "may" stays "may" (never a "will" or a guarantee), a
"please" stays a request, a "must" stays a "must", and no page adds a "must" the sentence lacks.
Rewording a page is fine; dropping, hardening or softening a rule fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from forms_server.config.env import Settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.web.app import create_app
from tests.handbook_pages import url_path_for

GUIDELINES = PROJECT_ROOT / "tests/data/peer-support-guidelines.txt"
# The words that carry a rule's force, and what each may become on a page: a "should" stays a
# "should" or becomes a "please", never a bare command; a "may" stays a "may", never a
# certainty; a "must" stays a "must". Read both ways: a page's force word must come from one
# of these in the guideline sentence it says.
FORCE_BECOMES: dict[str, set[str]] = {
    "must": {"must"},
    "should": {"should", "please"},
    "please": {"please"},
    "may": {"may"},
    "will": {"will"},
}
# A sentence that starts like one of these is a command, whatever words follow.
COMMAND_STARTS = (
    "do not ",
    "don't ",
    "do ",
    "always ",
    "never ",
    "make sure ",
    "let ",
    "remember ",
    "be ",
    "keep ",
    "talk ",
    "focus ",
    "try ",
)
# A sentence ends at a full stop, a question or exclamation mark, or the end of its block.
SENTENCE = re.compile(r"[^.!?\n]*[.!?]?")
BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "dt", "dd", "td", "th", "summary")
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")

# A fragment of one guideline sentence -> where the handbook (or a form) says it, and how.
# "form:leave" is the rendered leave notice chooser; everything else is a built page.
FIDELITY: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Peer support only works when we are all involved",
        [
            ("guidelines/principles.md", "Peer support only works when we are all involved"),
            ("guidelines/principles.md", "We all give and get support from each other"),
        ],
    ),
    (
        "the principles which we build our groups on",
        [("guidelines/principles.md", "These are the principles we build our group on")],
    ),
    (
        "Feeling safe and having confidence",
        [("guidelines/principles.md", "feeling safe and having confidence in the group")],
    ),
    (
        "you can achieve your goals",
        [
            ("guidelines/principles.md", "Hope means feeling that you can reach your goals"),
            ("guidelines/principles.md", "It means believing that recovery is possible"),
        ],
    ),
    (
        "opinions and value those differences",
        [
            ("guidelines/principles.md", "different experiences, perspectives and opinions"),
            ("guidelines/principles.md", "Diversity means we value those differences"),
        ],
    ),
    (
        "share the emotion of others",
        [("guidelines/principles.md", "we understand and share what others feel")],
    ),
    (
        "encourage others to share",
        [
            ("guidelines/principles.md", "we share, and we encourage others to share"),
            ("guidelines/principles.md", "That way we may all give and get support"),
        ],
    ),
    (
        "each of us is responsible for our own safety",
        [("guidelines/taking-part.md", "each of us is responsible for our own safety")],
    ),
    (
        "we should always focus on the here and now",
        [
            (
                "guidelines/taking-part.md",
                "When we share our experiences, we should always focus on the here and now, and "
                "not go into past events or traumas",
            ),
        ],
    ),
    (
        "it is ok to say you find that triggering or to step out",
        [
            ("guidelines/taking-part.md", "it is ok to say you find that triggering"),
            ("guidelines/taking-part.md", "It is also ok to step out of the group"),
        ],
    ),
    (
        "please message the group facilitators so we can make sure you are safe",
        [
            (
                "guidelines/taking-part.md",
                "If you step out of the group, or leave the session, please message the "
                "facilitators so we can make sure you are safe",
            ),
            (
                "about/glossary.md",
                "If you step out of the group, or leave the session, please message the "
                "facilitators so we can make sure you are safe",
            ),
        ],
    ),
    (
        "there is no pressure to talk",
        [
            ("guidelines/taking-part.md", "During the meeting there is no pressure to talk"),
            ("guidelines/taking-part.md", "draw strength just by being with people who understand"),
        ],
    ),
    (
        "There is no requirement to have your camera on",
        [
            ("guidelines/taking-part.md", "There is no requirement to have your camera on"),
            ("guidelines/taking-part.md", "prefer not to, for any reason, that is ok"),
        ],
    ),
    (
        "We are all here for the same reasons",
        [
            ("guidelines/taking-part.md", "We are all here for the same reasons"),
            ("guidelines/taking-part.md", "to get support and learn from each other"),
        ],
    ),
    (
        "ok for us all to have different experiences and perspectives",
        [
            (
                "guidelines/taking-part.md",
                "ok for us all to have different experiences and perspectives",
            )
        ],
    ),
    (
        "Please be respectful of others",
        [
            (
                "guidelines/taking-part.md",
                "Please be respectful of others, and remember to talk with people, not over them",
            ),
        ],
    ),
    (
        "Please offer support rather than advice",
        [("guidelines/taking-part.md", "Please offer support rather than advice")],
    ),
    (
        "We are committed to this being an inclusive group",
        [
            ("guidelines/taking-part.md", "We are committed to this being an inclusive group"),
            (
                "guidelines/taking-part.md",
                "Anyone using offensive or discriminatory language may be asked to leave",
            ),
        ],
    ),
    (
        "private and confidential to the group",
        [
            (
                "guidelines/confidentiality.md",
                "Taking part in the group, and what we talk about here, is private and "
                "confidential to the group",
            )
        ],
    ),
    (
        "It is fine to discuss topics raised in the group",
        [
            ("guidelines/confidentiality.md", "with your support network or therapist"),
            (
                "guidelines/confidentiality.md",
                "please respect the confidentiality of the group and refrain from sharing "
                "personal information",
            ),
            (
                "joining/faq.md",
                "please respect the confidentiality of the group and refrain from sharing "
                "personal information",
            ),
        ],
    ),
    (
        "you can message the facilitators at any time to discuss your concerns",
        [
            (
                "guidelines/safeguarding.md",
                "concerns about topics raised in the group, or about someone",
            ),
            ("guidelines/safeguarding.md", "you can message the facilitators at any time"),
        ],
    ),
    (
        "Any conversations will be held in confidence unless required by law",
        [
            (
                "guidelines/safeguarding.md",
                "Any conversations will be held in confidence unless the law",
            ),
            ("guidelines/confidentiality.md", "are held in confidence unless the law requires"),
        ],
    ),
    (
        "our safeguarding policy will be used",
        [
            ("guidelines/safeguarding.md", "shows someone may be at risk of harm"),
            ("guidelines/safeguarding.md", "our safeguarding policy will be used"),
            ("guidelines/safeguarding.md", "or to another adult or a child"),
        ],
    ),
    (
        "We will speak with you privately about any concerns",
        [
            ("guidelines/safeguarding.md", "We will speak with you privately about any concerns"),
            ("guidelines/safeguarding.md", "We will talk with you about any further options"),
        ],
    ),
    (
        "We keep your contact details securely",
        [
            (page, phrase)
            for page in (
                "guidelines/confidentiality.md",
                "guidelines/safeguarding.md",
                "about/privacy.md",
            )
            for phrase in (
                "We keep your contact details securely, in line with GDPR",
                "We will not share them without your permission, except if the law or "
                "safeguarding requires it",
            )
        ],
    ),
    (
        "You can attend the group for as long as you need to",
        [
            ("guidelines/attendance.md", "for as long as you need to"),
            ("guidelines/attendance.md", "There is no limit on how long you can attend"),
        ],
    ),
    (
        "We do advise you join for at least six sessions",
        [
            ("guidelines/attendance.md", "We advise you to come to at least six sessions"),
            ("guidelines/attendance.md", "We also advise you to tell us if you intend to leave"),
            ("guidelines/attendance.md", "so we can offer your place to someone else"),
        ],
    ),
    (
        "If you do not attend three meetings in a row",
        [
            (
                source,
                "If you do not come to three meetings in a row without telling us, you may be "
                "removed from the group",
            )
            for source in ("guidelines/attendance.md", "forms.md", "form:leave")
        ],
    ),
    (
        "responsible for their online safety, please follow",
        [
            ("guidelines/online-safety.md", "We want the group to be a safe space"),
            ("guidelines/online-safety.md", "Please follow each of these steps"),
            ("guidelines/online-safety.md", "responsible for their own online safety"),
        ],
    ),
    (
        "The meeting link is confidential to this group",
        [
            ("guidelines/online-safety.md", "The meeting link is confidential to this group"),
            ("guidelines/online-safety.md", "It must not be shared with any other person"),
        ],
    ),
    (
        "you can choose an anonymous name",
        [
            (
                page,
                "If you prefer not to use your name as your username, you can choose an "
                "anonymous name. Please let the facilitators know, so they are aware you have "
                "attended the group",
            )
            for page in (
                "guidelines/online-safety.md",
                "joining/faq.md",
                "joining/before-your-first-meeting.md",
            )
        ],
    ),
    (
        "Please ensure you are in a private space",
        [
            (
                "guidelines/online-safety.md",
                "Please make sure you are in a private space where the group will not be heard "
                "by anyone else in your household",
            ),
            ("guidelines/online-safety.md", "Headphones or earphones can help with this"),
        ],
    ),
    (
        "We will not record sessions or save chats",
        [
            ("guidelines/online-safety.md", "We will not record sessions or save chats"),
            (
                "guidelines/online-safety.md",
                "You must not record the sessions, save chats or screenshot",
            ),
        ],
    ),
    (
        "Please do not drink alcohol",
        [
            (
                "guidelines/online-safety.md",
                "Please do not drink alcohol or misuse substances before or during",
            )
        ],
    ),
    (
        "Please arrive a few minutes early",
        [("guidelines/online-safety.md", "Please arrive a few minutes early so we can start on")],
    ),
    (
        "the meeting when it starts",
        [
            ("guidelines/online-safety.md", "We will lock the meeting when it starts"),
        ],
    ),
    (
        "keeping the group a safe and supportive environment",
        [
            ("guidelines/removal.md", "We want the group to be a safe space"),
            ("guidelines/removal.md", "responsible for keeping the group safe and supportive"),
        ],
    ),
    (
        "There may be times when we feel it is necessary",
        [
            ("guidelines/removal.md", "There may be times when we feel we need to ask someone"),
            ("guidelines/removal.md", "This may be for a while, or for good"),
        ],
    ),
    (
        "Many issues can be resolved by a 1-1 conversation",
        [
            ("guidelines/removal.md", "Many issues can be sorted out by a 1-1 conversation."),
            ("guidelines/removal.md", "We always aim to resolve issues and welcome you back"),
        ],
    ),
    (
        "Reasons for removal includes",
        [("guidelines/removal.md", "Reasons for removal include, but are not limited to")],
    ),
    (
        "Abusive or offensive language",
        [("guidelines/removal.md", "abusive or offensive language or comments")],
    ),
    (
        "Repeatedly talking over others",
        [("guidelines/removal.md", "repeatedly talking over others who are speaking")],
    ),
    (
        "Speaking about topics which others find distressing",
        [("guidelines/removal.md", "speaking about topics which others find distressing")],
    ),
    (
        "If we feel you or someone around you are unsafe",
        [("guidelines/removal.md", "if we feel you or someone around you is unsafe")],
    ),
    (
        "If we receive a complaint",
        [("guidelines/removal.md", "if we receive a complaint from another group member")],
    ),
    (
        "Mentions of unhealthy coping methods",
        [
            (
                "guidelines/removal.md",
                "unhealthy coping methods or treatments that are not medically proven",
            ),
            ("guidelines/removal.md", "such as microdosing or using illegal substances"),
        ],
    ),
]


def guideline_sentences() -> list[str]:
    """Each sentence (or list item) of the guidelines, without the headings."""
    sentences = []
    for line in GUIDELINES.read_text(encoding="utf-8").splitlines():
        line = " ".join(line.split()).lstrip("•").strip()
        for sentence in re.split(r"(?<=[.!?])\s+", line):
            # Headings are short and have no full stop: "Online safety", "Removal from Group".
            if len(sentence.split()) >= 4 or sentence.endswith("."):
                sentences.append(sentence)
    return [s for s in sentences if s != "Peer Support Group Guidelines"]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def visible_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    main = soup.select_one("article") or soup.select_one("main") or soup
    return re.sub(r"\s+", " ", main.get_text(" "))


def block_text(html: str, without: tuple[str, ...] = ()) -> str:
    """The text as a reader reads it, one block (paragraph, list item, heading) a line, so a
    sentence never runs from a heading into the paragraph under it."""
    soup = BeautifulSoup(html, "html.parser")
    main = soup.select_one("article") or soup.select_one("main") or soup
    lines = []
    for element in main.find_all(BLOCKS):
        if element.name in without or element.find(BLOCKS) is not None:
            continue
        lines.append(" ".join(element.get_text(" ").split()))
    return "\n".join(line for line in lines if line)


@pytest.fixture(scope="module")
def texts(site_dir: Path, settings: Settings) -> dict[str, str]:
    """Every page and form a row names, as a reader sees it."""
    pages = {source for _, rows in FIDELITY for source, _ in rows}
    found = {}
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        for source in pages:
            if source.startswith("form:"):
                response = client.get(f"/forms/{source.removeprefix('form:')}/")
                assert response.status_code == 200, source
                # A form's words sit in labels and hints, not in paragraphs.
                found[source] = visible_text(response.text)
            else:
                html = (site_dir / url_path_for(source) / "index.html").read_text("utf-8")
                found[source] = block_text(html)
    return found


def test_every_guideline_sentence_is_claimed_by_exactly_one_row() -> None:
    sentences = guideline_sentences()
    assert len(sentences) > 40, "the guidelines file was read"
    for sentence in sentences:
        claims = [fragment for fragment, _ in FIDELITY if fragment in sentence]
        assert len(claims) == 1, f"{sentence!r} is claimed by {claims}"
    unused = [f for f, _ in FIDELITY if not any(f in sentence for sentence in sentences)]
    assert unused == []


def sentences_around(text: str, phrase: str) -> list[str]:
    """The whole sentences of `text` a phrase sits in (a phrase may span two)."""
    start = text.index(phrase)
    end = start + len(phrase)
    begin = max(text.rfind(mark, 0, start) for mark in ".!?\n") + 1
    ends = [found for mark in ".!?\n" if (found := text.find(mark, end)) != -1]
    finish = min(ends) + 1 if ends else len(text)
    return [s.strip() for s in SENTENCE.findall(text[begin:finish]) if s.strip()]


def is_command(sentence: str) -> bool:
    return sentence.lower().startswith(COMMAND_STARTS)


def force_problems(guideline: str, said: list[str]) -> list[str]:
    """How the page's sentences change the guideline sentence's force, both ways."""
    problems = []
    guideline_force = words(guideline) & set(FORCE_BECOMES)
    page_force = words(" ".join(said)) & set(FORCE_BECOMES)
    for force in sorted(guideline_force):
        if not page_force & FORCE_BECOMES[force]:
            problems.append(f"the guidelines say {force!r}; the pages do not")
    for force in sorted(page_force):
        if not any(force in FORCE_BECOMES[given] for given in guideline_force):
            problems.append(f"the pages say {force!r}; the guidelines do not")
    if "must" not in guideline_force:
        for sentence in said:
            if is_command(sentence) and "please" not in words(sentence):
                problems.append(f"a bare command the guidelines do not give: {sentence!r}")
    return problems


@pytest.mark.parametrize(("fragment", "rows"), FIDELITY, ids=[row[0] for row in FIDELITY])
def test_the_rule_is_where_it_should_be_with_the_same_force(
    texts: dict[str, str], fragment: str, rows: list[tuple[str, str]]
) -> None:
    (sentence,) = [s for s in guideline_sentences() if fragment in s]
    said = []
    for source, phrase in rows:
        assert phrase in texts[source], f"{source} does not say: {phrase}"
        said += sentences_around(texts[source], phrase)
    said = list(dict.fromkeys(said))
    assert force_problems(sentence, said) == [], said


def test_the_force_check_finds_what_earlier_pages_changed() -> None:
    """The changes a safeguarding reviewer found, each caught."""
    here_and_now = "we should always focus on the here and now, and not delve into past events."
    assert force_problems(
        here_and_now,
        [
            "When you share your experiences, always focus on the here and now.",
            "Do not go into past events or traumas.",
        ],
    ) == [
        "the guidelines say 'should'; the pages do not",
        "a bare command the guidelines do not give: 'Do not go into past events or traumas.'",
    ]
    assert force_problems(
        "There may be times when we feel it is necessary to ask someone to leave.",
        ["We will ask someone to leave."],
    ) == [
        "the guidelines say 'may'; the pages do not",
        "the pages say 'will'; the guidelines do not",
    ]
    respectful = "Please be respectful of others, and remember to talk with them and not over them."
    assert force_problems(
        respectful,
        ["Please be respectful of others.", "Let each person finish before you speak."],
    ) == ["a bare command the guidelines do not give: 'Let each person finish before you speak.'"]


# The handbook's own page of rules, introduced by "Please follow them in every meeting": every
# sentence there that asks something of a member says a guideline, as a row above claims it.
RULES_PAGE = "guidelines/taking-part.md"
# Sentences that only say how to do what a rule asks (which address, which form, which page).
HOW_TO = re.compile(r"^(?:Email |Or use |Or email |Read |Use the )")


def test_no_rule_appears_on_the_rules_page_that_the_guidelines_do_not_give(
    texts: dict[str, str], site_dir: Path
) -> None:
    html = (site_dir / url_path_for(RULES_PAGE) / "index.html").read_text("utf-8")
    # Headings name the rule under them; the sentences are what a member is asked to do.
    text = block_text(html, without=HEADINGS)
    assert "Please follow them in every meeting" in text
    claimed = [
        sentence
        for _, rows in FIDELITY
        for source, phrase in rows
        if source == RULES_PAGE
        for sentence in sentences_around(text, phrase)
    ]
    added = [
        sentence
        for sentence in (s.strip() for s in SENTENCE.findall(text))
        if sentence
        and sentence not in claimed
        and not HOW_TO.match(sentence)
        and '"' not in sentence  # an example of what someone might say, in quotes
        and (is_command(sentence) or words(sentence) & set(FORCE_BECOMES))
        and "Please follow them in every meeting" not in sentence
    ]
    assert added == [], "\n".join(added)


GLOSSARY = "about/glossary.md"
# Meanings the guidelines do not give a word, which a glossary once added.
GLOSSARY_ADDED = {
    "Stepping out": ("camera", "break"),
    "Facilitator": ("volunteer",),
    "1-1": ("facilitator",),
}


def glossary_entries(site_dir: Path) -> dict[str, str]:
    html = (site_dir / url_path_for(GLOSSARY) / "index.html").read_text("utf-8")
    article = BeautifulSoup(html, "html.parser").select_one("article")
    assert article is not None
    return {
        " ".join(term.get_text(" ").split()): " ".join(meaning.get_text(" ").split())
        for term in article.select("dl dt")
        if (meaning := term.find_next_sibling("dd")) is not None
    }


def test_the_glossary_gives_no_rule_or_meaning_the_guidelines_do_not(site_dir: Path) -> None:
    entries = glossary_entries(site_dir)
    assert len(entries) > 15
    phrases = [phrase for _, rows in FIDELITY for _, phrase in rows]
    ruled = [
        f"{term}: {sentence}"
        for term, meaning in entries.items()
        for sentence in (s.strip() for s in SENTENCE.findall(meaning))
        if sentence
        and (is_command(sentence) or words(sentence) & {"must", "should", "please"})
        and not any(phrase in sentence for phrase in phrases)
    ]
    assert ruled == [], "\n".join(ruled)
    added = {
        term: [word for word in GLOSSARY_ADDED[term] if word in entries[term].lower()]
        for term in GLOSSARY_ADDED
    }
    assert added == {term: [] for term in GLOSSARY_ADDED}
    # Nobody decided there is a safeguarding lead: the glossary does not say there is one.
    assert not any("safeguarding lead" in meaning.lower() for meaning in entries.values())
    assert "Safeguarding lead" not in entries
