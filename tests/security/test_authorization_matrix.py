"""Who may use which URL: the authorization matrix of the whole site.

Every URL route, the Django admin and the interview websocket are in the table below, with what
each persona gets by GET and, for the routes that change something, by POST. A guard walks
Django's URL resolver and fails when a route has no row, so a new URL cannot be added without
deciding who may use it.

Personas, on the deliberation "abortion-advice" unless said otherwise:
- anon: nobody signed in, no participant session.
- ada: the participant whose interviews, card, judgments and receipt the URLs name.
- bo: another participant of the same deliberation, in his own session.
- rhea: in the "researchers" group, assigned to this deliberation as researcher.
- rex: in the "researchers" group, researcher of another deliberation only.
- mo: in the "moderators" group, assigned to this deliberation as moderator.
- root: an admin (superuser).

Every POST carries a valid CSRF token (the clients enforce CSRF checks), so a refusal is the
authorization's doing, and a refused request must leave every table as it was.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from importlib import import_module
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from elicit import access
from elicit.models import Deliberation, Interview, Message, StaffAssignment
from elicit.routing import websocket_urlpatterns
from elicit.services import SESSION_KEY
from graph.models import ApiToken, PilotRun, WisestVote
from graph.moderation import services as moderation
from graph.research.forms import question_initial
from tests.factories import (
    CanonicalValueFactory,
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    InterviewFactory,
    JudgmentFactory,
    ModerationFlagFactory,
    ParticipantFactory,
    QuestionFactory,
    UserFactory,
    ValuesCardFactory,
)

Role = StaffAssignment.Role

PERSONAS = ("anon", "ada", "bo", "rhea", "rex", "mo", "root")

# --- The matrix ---------------------------------------------------------------------------------
#
# A case is a route's name (the websocket's: its pattern), or a name and a variant in brackets.
# One outcome alone stands for every persona.
#
#   ok       allowed: 200                     file     allowed: 200, a file download
#   >place   allowed: 302 to that place       <place   refused: 302 back there with a message
#   login    refused: 302 to the staff sign-in page, /research/login/?next=<the URL>
#   land     refused: 302 to the deliberation's landing page ("agree to the terms first")
#   adm      refused: 302 to the admin's sign-in page
#   401 403 404 405   refused with that status (404: a deliberation, or an item of one, the
#            persona may not see, or a participant's item that is not theirs)
#   open     the websocket connects           shut     the websocket is closed, never accepted
#
# Places are in PLACES below. Refused requests must change nothing in the database.

MATRIX = """
case                                    verb anon   ada    bo     rhea   rex    mo     root
healthz                                 GET  ok
set_language                            POST >home

# The research area: staff sign in at /research/login/
research:login                          GET  ok     ok     ok     >rsch  >rsch  >rsch  >rsch
research:logout                         GET  405
research:logout                         POST >sign
research:index                          GET  login  login  login  ok     ok     >modq  ok
research:new                            GET  login  login  login  ok     ok     404    ok
research:new                            POST login  login  login  >new   >new   404    >new
research:dashboard                      GET  login  login  login  ok     404    404    ok
research:dashboard[draft]               GET  login  login  login  404    404    404    ok
research:edit                           GET  login  login  login  ok     404    404    ok
research:edit                           POST login  login  login  >edit  404    404    >edit
research:pipeline                       GET  login  login  login  >dash  404    404    >dash
research:run_pipeline                   GET  405
research:run_pipeline                   POST login  login  login  >dash  404    404    >dash
research:results                        GET  login  login  login  ok     404    404    ok
research:score_with_flagged             GET  405
research:score_with_flagged             POST login  login  login  >res   404    404    >res
research:explorer                       GET  login  login  login  ok     404    404    ok
research:explorer_value                 GET  login  login  login  ok     404    404    ok
research:pilot                          GET  login  login  login  ok     404    404    ok
research:pilot                          POST login  login  login  >pilot 404    404    >pilot
research:pilot_report                   GET  login  login  login  ok     404    404    ok
research:export_index                   GET  login  login  login  ok     404    404    ok
research:export                         GET  login  login  login  file   404    404    file
research:target                         GET  login  login  login  ok     404    404    ok
research:tokens                         GET  login  login  login  ok     ok     404    ok
research:tokens                         POST login  login  login  ok     ok     404    ok
research:revoke_token                   GET  login  login  login  405    405    404    405
research:revoke_token                   POST login  login  login  >toks  404    404    404
research:openapi                        GET  ok

# Moderation: moderators act, researchers of the deliberation read
moderation:queue                        GET  login  login  login  ok     ok     ok     ok
moderation:claim_next                   GET  405
moderation:claim_next                   POST login  login  login  <modq  <modq  >flag  >flag
moderation:flag                         GET  login  login  login  ok     404    ok     ok
moderation:claim                        GET  405
moderation:claim                        POST login  login  login  403    404    >flag  >flag
moderation:release                      GET  405
moderation:release                      POST login  login  login  403    404    >modq  >modq
moderation:act                          GET  405
moderation:act                          POST login  login  login  403    404    >modq  >modq
moderation:edit_card                    GET  login  login  login  403    404    ok     ok
moderation:edit_card                    POST login  login  login  403    404    >vala  >vala
moderation:split_card                   GET  405
moderation:split_card                   POST login  login  login  403    404    >newv  >newv
moderation:values                       GET  login  login  login  ok     ok     ok     ok
moderation:value                        GET  login  login  login  ok     404    ok     ok
moderation:merge_value                  GET  405
moderation:merge_value                  POST login  login  login  403    404    >valb  >valb
moderation:log                          GET  login  login  login  ok     ok     ok     ok
moderation:log_csv                      GET  login  login  login  file   file   file   file
moderation:undo                         GET  405
moderation:undo                         POST login  login  login  403    404    >log   >log

# The participant's way through; "ada" owns the interviews and judgments the URLs name
elicit:home                             GET  ok
elicit:landing                          GET  ok
elicit:landing[draft]                   GET  404
elicit:join                             GET  405
elicit:join                             POST >intv
elicit:join[draft]                      POST 404
elicit:join[invite-only]                POST 403
elicit:interview                        GET  land   ok     ok     land   land   land   land
elicit:send                             GET  405
elicit:send                             POST 404    >intvq 404    404    404    404    404
elicit:confirm_card                     GET  405
elicit:confirm_card                     POST 404    >match 404    404    404    404    404
graph:match                             GET  404    ok     404    404    404    404    404
graph:match                             POST 404    >vote  404    404    404    404    404
graph:vote                              GET  land   ok     ok     land   land   land   land
graph:vote                              POST land   >judge >judge land   land   land   land
graph:judge                             GET  land   ok     >done  land   land   land   land
graph:judge                             POST land   >judge 404    land   land   land   land
graph:judgments                         GET  land   ok     ok     land   land   land   land
graph:revise_judgment                   GET  land   ok     404    land   land   land   land
graph:revise_judgment                   POST land   >jdgs  404    land   land   land   land
graph:done                              GET  land   ok     ok     land   land   land   land
graph:done                              POST land   ok     >done  land   land   land   land
graph:report                            GET  405
graph:report                            POST land   >judge <judge land   land   land   land
graph:my_data                           GET  404    ok     ok     404    404    404    404
graph:download_my_data                  GET  405
graph:download_my_data                  POST 404    file   file   404    404    404    404
graph:delete_my_data                    GET  404    ok     ok     404    404    404    404
graph:delete_my_data                    POST 404    >bye   >bye   404    404    404    404
ws/interview/<int:interview_id>/        WS   shut   open   shut   shut   shut   shut   shut
ws/interview/<int:interview_id>/[evil]  WS   shut
ws/interview/<int:interview_id>/[none]  WS   shut

# The personal receipt link: whoever holds the token is the participant
graph:receipt                           GET  ok
graph:my_data_receipt                   GET  ok
graph:download_receipt                  GET  405
graph:download_receipt                  POST file
graph:delete_receipt                    GET  ok
graph:delete_receipt                    POST >bye
graph:receipt[bad-token]                GET  404
graph:my_data_receipt[bad-token]        GET  404
graph:download_receipt[bad-token]       POST 404
graph:delete_receipt[bad-token]         GET  404
graph:delete_receipt[bad-token]         POST 404

# The Django admin: admins only (researchers and moderators are not admin staff)
admin:index                             GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_participant_changelist     GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_interview_changelist       GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_interview_change           GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_valuescard_changelist      GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_valuescard_change          GET  adm    adm    adm    adm    adm    adm    ok
admin:elicit_valuescard_delete          POST adm    adm    adm    adm    adm    adm    >cards
admin:graph_upgradejudgment_changelist  GET  adm    adm    adm    adm    adm    adm    ok
"""

# Where the redirects lead ({slug} and the world's ids filled in; "*": any URL that starts so).
PLACES = {
    "home": "/",
    "sign": "/research/login/",
    "rsch": "/research/",
    "new": "/research/d/a-new-study/edit/",
    "edit": "/research/d/{slug}/edit/",
    "dash": "/research/d/{slug}/",
    "res": "/research/d/{slug}/results/",
    "pilot": "/research/d/{slug}/pilot/*",
    "toks": "/research/tokens/",
    "modq": "/moderation/",
    "flag": "/moderation/flags/{flag}/",
    "vala": "/moderation/values/{a}/",
    "valb": "/moderation/values/{b}/",
    "newv": "/moderation/values/*",
    "log": "/moderation/log/",
    "intv": "/d/{slug}/interview/",
    "intvq": "/d/{slug}/interview/?q=homework",
    "match": "/d/{slug}/interview/{open_interview}/match/",
    "vote": "/d/{slug}/vote/",
    "judge": "/d/{slug}/judge/",
    "jdgs": "/d/{slug}/judgments/",
    "done": "/d/{slug}/done/",
    "bye": "/d/{slug}/",  # data deleted: back to the landing page, signed out
    "cards": "/admin/elicit/valuescard/",
}

# An API token acts as its user on the export endpoints only (Authorization: Bearer mge_...).
# Tokens: none; rhea's; rex's (another deliberation); rhea's revoked one; that of a researcher
# of this deliberation whose account was deactivated; a made-up one.
TOKENS = """
case                                    verb none   rhea   rex    revoked inactive junk
research:export                         GET  login  file   404    401     401      401
research:export_index                   GET  login  login  login  login   login    login
research:target                         GET  login  login  login  login   login    login
research:tokens                         GET  login  login  login  login   login    login
"""

# Pages a persona may open but which must show nothing of what is not theirs to see; each is
# checked against a persona who does see it there, so that the check cannot pass vacuously.
#   case, the persona who must not see it, what, the persona who does see it there
UNSEEN = [
    ("research:index", "rex", "deliberation", "rhea"),
    ("research:tokens", "rex", "rhea's token", "rhea"),
    ("moderation:queue", "rex", "deliberation", "mo"),
    ("moderation:values", "rex", "deliberation", "mo"),
    ("moderation:log", "rex", "deliberation", "mo"),
    ("moderation:log_csv", "rex", "deliberation", "mo"),
    ("graph:my_data", "bo", "ada's data", "ada"),
    ("graph:download_my_data", "bo", "ada's data", "ada"),
    ("graph:receipt", "anon", "ada's data", ""),  # the receipt shows her value, nothing else
    # Panel ids go to admins (and holders of elicit.view_panel_ids), not to researchers.
    ("research:export", "rhea", "ada's panel id", "root"),
]
MARKS = {
    "deliberation": ("Abortion advice", "abortion-advice"),
    "rhea's token": ("Analysis notebook of Rhea",),
    "ada's data": ("Ada wrote this in confidence", "PROLIFIC-ADA"),
    "ada's panel id": ("PROLIFIC-ADA",),
}

# case -> (URL, data posted): placeholders are {slug} and the world's ids (World.ids).
REQUESTS: dict[str, tuple[str, dict[str, str]]] = {
    "healthz": ("/healthz", {}),
    "set_language": ("/i18n/setlang/", {"language": "en", "next": "/"}),
    "research:login": ("/research/login/", {}),
    "research:logout": ("/research/logout/", {}),
    "research:index": ("/research/", {}),
    "research:new": ("/research/new/", {"title": "A new study", "slug": "a-new-study"}),
    "research:dashboard": ("/research/d/{slug}/", {}),
    "research:dashboard[draft]": ("/research/d/unpublished/", {}),
    "research:edit": ("/research/d/{slug}/edit/", {}),  # posts World.edit_post
    "research:pipeline": ("/research/d/{slug}/pipeline/", {}),
    "research:run_pipeline": ("/research/d/{slug}/pipeline/run/", {}),
    "research:results": ("/research/d/{slug}/results/", {}),
    "research:score_with_flagged": ("/research/d/{slug}/results/with-flagged/", {}),
    "research:explorer": ("/research/d/{slug}/explorer/", {}),
    "research:explorer_value": ("/research/d/{slug}/explorer/value/{a}/", {}),
    "research:pilot": (
        "/research/d/{slug}/pilot/",
        {
            "participants": "30",
            "repeats": "1",
            "n_values": "4",
            "n_contexts": "1",
            "judgments_per_participant": "3",
            "noise": "1",
            "unsure_share": "0",
            "faction_share": "0",
            "planted": "",
            "seed": "1",
        },
    ),
    "research:pilot_report": ("/research/d/{slug}/pilot/{pilot}/", {}),
    "research:export_index": ("/research/d/{slug}/export/", {}),
    "research:export": ("/research/d/{slug}/export/tables.zip", {}),
    "research:target": ("/research/d/{slug}/target/", {}),
    "research:tokens": ("/research/tokens/", {"name": "my script"}),
    "research:revoke_token": ("/research/tokens/{rhea_token}/revoke/", {}),
    "research:openapi": ("/research/api/openapi.json", {}),
    "moderation:queue": ("/moderation/", {}),
    "moderation:claim_next": ("/moderation/claim-next/", {}),
    "moderation:flag": ("/moderation/flags/{flag}/", {}),
    "moderation:claim": ("/moderation/flags/{flag}/claim/", {}),
    "moderation:release": ("/moderation/flags/{flag}/release/", {}),
    "moderation:act": ("/moderation/flags/{flag}/act/", {"action": "approve", "reason": "fine"}),
    "moderation:edit_card": (
        "/moderation/cards/{card}/edit/",
        {
            "title": "Respect what she decides",
            "description": "Respecting what she decides for herself.",
            "policies": "MOMENTS when she decides\nSIGNS of pressure\nOPPORTUNITIES to step back",
            "reason": "clearer",
        },
    ),
    "moderation:split_card": ("/moderation/cards/{extra_card}/split/", {"reason": "different"}),
    "moderation:values": ("/moderation/values/", {}),
    "moderation:value": ("/moderation/values/{a}/", {}),
    "moderation:merge_value": ("/moderation/values/{a}/merge/", {"into": "{b}", "reason": "same"}),
    "moderation:log": ("/moderation/log/", {}),
    "moderation:log_csv": ("/moderation/log.csv", {}),
    "moderation:undo": ("/moderation/actions/{action}/undo/", {"reason": "not rude after all"}),
    "elicit:home": ("/", {}),
    "elicit:landing": ("/d/{slug}/", {}),
    "elicit:landing[draft]": ("/d/unpublished/", {}),
    "elicit:join": ("/d/{slug}/join/", {"consent": "on"}),
    "elicit:join[draft]": ("/d/unpublished/join/", {"consent": "on"}),
    "elicit:join[invite-only]": ("/d/homework-help/join/", {"consent": "on"}),
    "elicit:interview": ("/d/{slug}/interview/", {}),
    "elicit:send": (
        "/d/{slug}/interview/{open_interview}/send/",
        {"message": "One more thing.", "client_id": "c-1", "action": "send"},
    ),
    "elicit:confirm_card": (
        "/d/{slug}/interview/{open_interview}/card/",
        {
            "title": "Honest support",
            "description": "Being honest about what I know and do not know.",
            "policies": "MOMENTS when I am unsure\nOPPORTUNITIES to say so\nSIGNS of doubt",
        },
    ),
    "graph:match": ("/d/{slug}/interview/{done_interview}/match/", {"value": "distinct"}),
    "graph:vote": ("/d/{slug}/vote/", {"value": "{c}"}),  # c was shown to Ada and to Bo
    "graph:judge": ("/d/{slug}/judge/", {"judgment": "{pending}", "verdict": "upgrade"}),
    "graph:judgments": ("/d/{slug}/judgments/", {}),
    "graph:revise_judgment": (
        "/d/{slug}/judgments/{answered}/",
        {"verdict": "not_upgrade", "comment": "I changed my mind."},
    ),
    "graph:done": ("/d/{slug}/done/", {"skip": "1"}),
    # A story shown to Ada, never to Bo.
    "graph:report": (
        "/d/{slug}/report/",
        {"report": "story:{story}:offensive", "next": "/d/{slug}/judge/"},
    ),
    "graph:my_data": ("/d/{slug}/my-data/", {}),
    "graph:download_my_data": ("/d/{slug}/my-data/download/", {}),
    "graph:delete_my_data": ("/d/{slug}/my-data/delete/", {"confirm": "yes"}),
    "graph:receipt": ("/r/{receipt}/", {}),
    "graph:my_data_receipt": ("/r/{receipt}/my-data/", {}),
    "graph:download_receipt": ("/r/{receipt}/my-data/download/", {}),
    "graph:delete_receipt": ("/r/{receipt}/my-data/delete/", {"confirm": "yes"}),
    "graph:receipt[bad-token]": ("/r/{bad_receipt}/", {}),
    "graph:my_data_receipt[bad-token]": ("/r/{bad_receipt}/my-data/", {}),
    "graph:download_receipt[bad-token]": ("/r/{bad_receipt}/my-data/download/", {}),
    "graph:delete_receipt[bad-token]": ("/r/{bad_receipt}/my-data/delete/", {"confirm": "yes"}),
    "admin:index": ("/admin/", {}),
    "admin:elicit_participant_changelist": ("/admin/elicit/participant/", {}),
    "admin:elicit_interview_changelist": ("/admin/elicit/interview/", {}),
    "admin:elicit_interview_change": ("/admin/elicit/interview/{done_interview}/change/", {}),
    "admin:elicit_valuescard_changelist": ("/admin/elicit/valuescard/", {}),
    "admin:elicit_valuescard_change": ("/admin/elicit/valuescard/{card}/change/", {}),
    "admin:elicit_valuescard_delete": ("/admin/elicit/valuescard/{card}/delete/", {"post": "yes"}),
    "admin:graph_upgradejudgment_changelist": ("/admin/graph/upgradejudgment/", {}),
}


# --- Reading the tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    case: str
    verb: str
    persona: str
    outcome: str

    @property
    def route(self) -> str:
        return self.case.split("[")[0]

    @property
    def refused(self) -> bool:
        return self.outcome not in {"ok", "file", "open"} and not self.outcome.startswith(">")

    def id(self) -> str:
        return f"{self.case}-{self.verb}-{self.persona}"


def read_table(text: str) -> list[Cell]:
    lines = [line for line in text.strip().splitlines() if line and not line.startswith("#")]
    header, rows = lines[0].split(), lines[1:]
    personas = header[2:]
    cells = []
    for line in rows:
        case, verb, *outcomes = line.split()
        if len(outcomes) == 1:
            outcomes *= len(personas)
        assert len(outcomes) == len(personas), line
        cells += [Cell(case, verb, p, o) for p, o in zip(personas, outcomes, strict=True)]
    return cells


CELLS = read_table(MATRIX)
HTTP_CELLS = [c for c in CELLS if c.verb in {"GET", "POST"}]
WS_CELLS = [c for c in CELLS if c.verb == "WS"]
TOKEN_CELLS = read_table(TOKENS)


def by_id(cells):
    return pytest.mark.parametrize("cell", cells, ids=[c.id() for c in cells])


# --- The world ----------------------------------------------------------------------------------


@dataclass
class World:
    slug: str = "abortion-advice"
    ids: dict[str, int | str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # persona -> session key
    tokens: dict[str, str] = field(default_factory=dict)  # token persona -> Authorization
    edit_post: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        return text.format(slug=self.slug, **self.ids)


def build_world() -> World:
    """The deliberation with two participants who went some way through it, and its staff; a
    second, invite-only deliberation with a researcher of its own; a draft nobody is assigned
    to."""
    w = World()
    access.ensure_groups()  # a transactional test elsewhere may have flushed the migration's
    researchers = Group.objects.get(name=access.RESEARCHERS_GROUP)
    moderators = Group.objects.get(name=access.MODERATORS_GROUP)

    deliberation = DeliberationFactory(slug=w.slug, title="Abortion advice")
    hard = ContextFactory(deliberation=deliberation, text="When the person is in distress")
    question = QuestionFactory(deliberation=deliberation, slug="abortion", position=0)
    question.contexts.add(hard)
    second = QuestionFactory(deliberation=deliberation, slug="homework", position=1)
    second.contexts.add(hard)
    a = CanonicalValueFactory(deliberation=deliberation, title="Respect her choice")
    b = CanonicalValueFactory(deliberation=deliberation, title="Listen first")
    c = CanonicalValueFactory(deliberation=deliberation, title="Name the pressure")

    ada = ParticipantFactory(
        deliberation=deliberation, panel_pid="PROLIFIC-ADA", consented_at=timezone.now()
    )
    bo = ParticipantFactory(deliberation=deliberation, consented_at=timezone.now())
    cards = {}
    for person, value, words in ((ada, a, "Ada wrote this in confidence."), (bo, b, "I care.")):
        interview = InterviewFactory(
            participant=person, question=question, status=Interview.Status.COMPLETED
        )
        Message.objects.create(interview=interview, seq=0, role="interviewer", content="Hello?")
        Message.objects.create(interview=interview, seq=1, role="participant", content=words)
        cards[person.pk] = ValuesCardFactory(
            deliberation=deliberation,
            question=question,
            participant=person,
            interview=interview,
            canonical=value,
        )
    # Ada's second interview has a card proposed, not yet confirmed: she may still write.
    open_interview = InterviewFactory(
        participant=ada,
        question=second,
        status=Interview.Status.CARD_PROPOSED,
        draft_card={
            "title": "Honest support",
            "description": "Being honest about what I know and do not know.",
            "policies": ["MOMENTS when I am unsure", "OPPORTUNITIES to say so", "SIGNS of doubt"],
        },
    )
    Message.objects.create(interview=open_interview, seq=0, role="interviewer", content="Hi?")
    # A second card of value A, so that a card can be split out of it.
    extra_card = ValuesCardFactory(deliberation=deliberation, question=question, canonical=a)
    for person, shown in ((ada, [b, c]), (bo, [a, c])):
        WisestVote.objects.create(participant=person, question=question).shown.set(shown)
    ab = HypothesisFactory(deliberation=deliberation, context=hard, from_value=a, to_value=b)
    bc = HypothesisFactory(deliberation=deliberation, context=hard, from_value=b, to_value=c)
    answered = JudgmentFactory(participant=ada, hypothesis=ab)
    pending = JudgmentFactory(participant=ada, hypothesis=bc, verdict="", answered_at=None)
    JudgmentFactory(participant=bo, hypothesis=ab)

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    rhea = UserFactory(username="rhea")
    rhea.groups.add(researchers)
    mo = UserFactory(username="mo")
    mo.groups.add(moderators)
    rex = UserFactory(username="rex")
    rex.groups.add(researchers)
    ivy = UserFactory(username="ivy", is_active=False)  # a researcher who has left
    for user, role in ((rhea, Role.RESEARCHER), (mo, Role.MODERATOR), (ivy, Role.RESEARCHER)):
        StaffAssignment.objects.create(user=user, deliberation=deliberation, role=role)
    elsewhere = DeliberationFactory(
        slug="homework-help", title="Homework help", access=Deliberation.Access.INVITE
    )
    StaffAssignment.objects.create(user=rex, deliberation=elsewhere, role=Role.RESEARCHER)
    DeliberationFactory(slug="unpublished", title="Unpublished", status=Deliberation.Status.DRAFT)

    flag = ModerationFlagFactory(target=cards[ada.pk], reason="harassment")
    rude = Message.objects.get(interview__participant=bo, seq=1)
    action = moderation.hide(actor=root, target=rude, reason="rude")
    pilot = PilotRun.objects.create(
        deliberation=deliberation, status=PilotRun.Status.DONE, created_by=rhea
    )
    token, clear = ApiToken.issue(user=rhea, name="Analysis notebook of Rhea")
    revoked, revoked_clear = ApiToken.issue(user=rhea, name="old laptop")
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    w.tokens = {
        "none": "",
        "rhea": f"Bearer {clear}",
        "rex": f"Bearer {ApiToken.issue(user=rex, name='notebook')[1]}",
        "revoked": f"Bearer {revoked_clear}",
        "inactive": f"Bearer {ApiToken.issue(user=ivy, name='notebook')[1]}",
        "junk": "Bearer mge_not-a-token-anyone-was-given",
    }

    w.ids.update(
        a=a.pk,
        b=b.pk,
        c=c.pk,
        done_interview=cards[ada.pk].interview_id,
        open_interview=open_interview.pk,
        card=cards[ada.pk].pk,
        extra_card=extra_card.pk,
        answered=answered.pk,
        pending=pending.pk,
        story=bc.pk,
        flag=flag.pk,
        action=action.pk,
        pilot=pilot.pk,
        rhea_token=token.pk,
        receipt=ada.receipt_token,
        bad_receipt=ada.receipt_token[:-4] + "abcd",
    )
    w.edit_post = edit_post(deliberation)
    w.sessions = {
        "anon": "",
        "ada": participant_session(ada),
        "bo": participant_session(bo),
        "rhea": user_session(rhea),
        "rex": user_session(rex),
        "mo": user_session(mo),
        "root": user_session(root),
    }
    return w


def participant_session(participant) -> str:
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = {str(participant.deliberation_id): participant.pk}
    store.create()
    return store.session_key


def user_session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def edit_post(deliberation) -> dict[str, str]:
    """The setup form as its page sends it, with a new title."""
    data = {
        "d-title": "Renamed",
        "d-description": "",
        "d-consent_text": "",
        "d-status": "open",
        "d-access": "public",
        "d-moderation_mode": "permissive",
        "d-estimated_minutes": "20",
        "d-wisest_vote_size": "6",
        "d-judgments_per_participant": "4",
        "d-completion_code": "",
        "d-completion_redirect_url": "",
        "d-llm_model": "",
        "f-TOTAL_FORMS": "0",
        "f-INITIAL_FORMS": "0",
    }
    questions = question_initial(deliberation)
    data.update({"q-TOTAL_FORMS": str(len(questions)), "q-INITIAL_FORMS": "0"})
    for i, question in enumerate(questions):
        for key, value in question.items():
            if key != "is_active":
                data[f"q-{i}-{key}"] = str(value)
            elif value:
                data[f"q-{i}-{key}"] = "on"
    return data


@pytest.fixture(scope="class")
def world(django_db_setup, django_db_blocker):
    """Built once, in a transaction rolled back when the class using it is done, so nothing
    leaks into other tests; each test runs in a savepoint inside it (pytest-django lets
    non-transactional tests run inside a higher-scoped transaction). Class-scoped so that the
    websocket tests, which need committed data, never run inside it."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            built = build_world()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


CSRF_SECRET = _get_new_csrf_string()


def send(world: World, case: str, persona: str, verb: str, *, authorization: str = ""):
    """The request of a case, as the persona; a POST with a valid CSRF token."""
    url, data = REQUESTS[case]
    client = Client(enforce_csrf_checks=True)
    if world.sessions.get(persona):
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[persona]
    headers = {"Authorization": authorization} if authorization else {}
    if verb == "GET":
        return client.get(world.fill(url), headers=headers)
    data = world.edit_post if case == "research:edit" else data
    client.cookies[settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    data = {key: world.fill(value) for key, value in data.items()}
    return client.post(world.fill(url), {**data, "csrfmiddlewaretoken": CSRF_SECRET})


def content(response) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if response["Content-Type"] == "application/zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return "".join(archive.read(name).decode() for name in archive.namelist())
    return body.decode()


def database_state() -> dict[str, list]:
    """Every row of the project's tables, the users' and the admin log's (sessions aside). Raw
    SQL: it runs twice for each refused cell."""
    tables = sorted(
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in {"elicit", "graph", "auth", "admin"}
    )
    state = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")  # noqa: S608
            state[table] = cursor.fetchall()
    return state


def check(world: World, cell: Cell, response, url: str) -> None:
    """The response is what the cell says."""
    outcome, status = cell.outcome, response.status_code
    location = response.get("Location", "")
    attachment = "attachment" in response.get("Content-Disposition", "")
    said = f"{cell.id()}: got {status} {location}"
    if outcome in {"ok", "file"}:
        assert status == 200, said
        assert attachment == (outcome == "file"), said
    elif outcome.isdigit():
        assert status == int(outcome), said
    elif outcome in {"login", "adm"}:
        assert status == 302, said
        sign_in = "/research/login/" if outcome == "login" else "/admin/login/"
        assert location.startswith(sign_in + "?"), said
        assert parse_qs(urlsplit(location).query)["next"] == [url], said
    else:
        assert status == 302, said
        place = world.fill(PLACES[outcome[1:]] if outcome[0] in "<>" else "/d/{slug}/")
        if place.endswith("*"):
            assert location.startswith(place[:-1]) and location != place[:-1], said
        else:
            assert location == place, said


# --- The HTTP cells -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("no_llm")
class TestTheSite:
    @by_id(HTTP_CELLS)
    def test_each_persona_gets_what_the_matrix_says(self, world, cell):
        before = database_state() if cell.refused else None
        response = send(world, cell.case, cell.persona, cell.verb)
        check(world, cell, response, world.fill(REQUESTS[cell.case][0]))
        if cell.refused:
            assert database_state() == before, f"{cell.id()} was refused but changed data"

    @by_id(TOKEN_CELLS)
    def test_an_api_token_opens_only_the_exports_its_user_may_research(self, world, cell):
        before = database_state()
        authorization = world.tokens[cell.persona]
        response = send(world, cell.case, "anon", cell.verb, authorization=authorization)
        check(world, cell, response, world.fill(REQUESTS[cell.case][0]))
        # Nothing changes, but a valid token's last use (on the export endpoint) is recorded.
        used = set(
            ApiToken.objects.filter(last_used_at__isnull=False).values_list(
                "user__username", flat=True
            )
        )
        valid = cell.persona in {"rhea", "rex"} and cell.case == "research:export"
        assert used == ({cell.persona} if valid else set())
        after = database_state()
        del after["graph_apitoken"], before["graph_apitoken"]
        assert after == before, f"{cell.id()} changed data"

    @pytest.mark.parametrize(
        "case, persona, what, seer", UNSEEN, ids=[f"{c}-{p}" for c, p, _w, _s in UNSEEN]
    )
    def test_a_page_a_persona_may_open_shows_nothing_that_is_not_theirs(
        self, world, case, persona, what, seer
    ):
        verb = "POST" if "download" in case else "GET"
        shown = content(send(world, case, persona, verb))
        for mark in MARKS[what]:
            assert mark not in shown, f"{persona} sees {mark!r} on {case}"
        if seer:  # where it may be seen, it is
            seen = content(send(world, case, seer, verb))
            assert any(mark in seen for mark in MARKS[what]), f"{seer} does not see {what}"
        else:  # the receipt's token holder sees it on their data page
            seen = content(send(world, "graph:my_data_receipt", persona, "GET"))
            assert all(mark in seen for mark in MARKS[what])

    def test_a_post_without_the_csrf_token_is_refused_so_the_matrix_tests_authorization(
        self, world
    ):
        client = Client(enforce_csrf_checks=True)
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions["root"]
        before = database_state()
        response = client.post(world.fill("/research/d/{slug}/results/with-flagged/"))
        assert response.status_code == 403
        assert database_state() == before

    def test_a_staff_account_without_permissions_sees_no_participant_data_in_the_admin(
        self, world, client
    ):
        """A moderator made admin staff (as the moderation browser test's Mo is) reaches the
        admin's index and its moderation links, and nothing of the participants' data."""
        mo = UserFactory(username="mo-staff", is_staff=True)
        client.force_login(mo)
        index = client.get("/admin/")
        assert index.status_code == 200
        assert "/moderation/" in index.content.decode()
        for case, (url, _data) in REQUESTS.items():
            if case.startswith("admin:") and case != "admin:index":
                assert client.get(world.fill(url)).status_code == 403, case


# --- The websocket cells ------------------------------------------------------------------------


def build_websocket_world() -> World:
    """Just what the websocket needs: Ada's interview, Bo, and the staff."""
    w = World()
    deliberation = DeliberationFactory(slug=w.slug)
    question = QuestionFactory(deliberation=deliberation)
    ada = ParticipantFactory(deliberation=deliberation, consented_at=timezone.now())
    bo = ParticipantFactory(deliberation=deliberation, consented_at=timezone.now())
    interview = InterviewFactory(participant=ada, question=question)
    Message.objects.create(interview=interview, seq=0, role="interviewer", content="Hello?")
    InterviewFactory(participant=bo, question=question)
    w.ids["interview"] = interview.pk
    w.sessions = {"anon": "", "ada": participant_session(ada), "bo": participant_session(bo)}
    for name, role in (("rhea", Role.RESEARCHER), ("rex", None), ("mo", Role.MODERATOR)):
        user = UserFactory(username=name)
        if role:
            StaffAssignment.objects.create(user=user, deliberation=deliberation, role=role)
        w.sessions[name] = user_session(user)
    w.sessions["root"] = user_session(UserFactory(username="root", is_superuser=True))
    return w


@pytest.mark.django_db(transaction=True)
@by_id(WS_CELLS)
async def test_the_interview_websocket_admits_only_its_participant(cell, no_llm):
    from config.asgi import application

    w = await sync_to_async(build_websocket_world)()
    # The Origin header: this site's, another site's ([evil]), or none at all ([none]).
    headers = {
        "": [(b"origin", b"http://localhost")],
        "evil": [(b"origin", b"http://evil.example")],
        "none": [],
    }[cell.case.partition("[")[2].rstrip("]")]
    if w.sessions[cell.persona]:
        cookie = f"{settings.SESSION_COOKIE_NAME}={w.sessions[cell.persona]}"
        headers.append((b"cookie", cookie.encode()))
    comm = WebsocketCommunicator(application, f"/ws/interview/{w.ids['interview']}/", headers)
    connected, _code = await comm.connect()
    try:
        assert connected == (cell.outcome == "open"), cell.id()
        if connected:  # the catch-up: the transcript as the page shows it
            assert "Hello?" in await comm.receive_from(timeout=10)
    finally:
        await comm.disconnect()


# --- The guard: every route has a row -----------------------------------------------------------


def every_route() -> list[str]:
    """The name of every URL route (its path when it has none) with its namespace, admin's
    included, and the pattern of every websocket route."""

    def walk(patterns, namespace="", prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace or ""]))
                yield from walk(pattern.url_patterns, inner, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                name = pattern.name or prefix + str(pattern.pattern)
                yield ":".join(filter(None, [namespace, name]))

    return [*walk(get_resolver().url_patterns), *(str(p.pattern) for p in websocket_urlpatterns)]


def covered_by(route: str) -> str:
    """How the matrix covers a route: its own rows, or (for the Django admin's hundred-odd
    generated URLs) the admin rows, which try its index and the changelists, change and
    delete pages of participants' data."""
    if any(cell.route == route for cell in CELLS):
        return "rows"
    if route.startswith("admin:"):
        return "admin rows"
    return ""


def test_every_route_has_a_row_in_the_matrix():
    missing = [route for route in every_route() if not covered_by(route)]
    assert missing == [], "decide who may use these and add them to MATRIX"


def test_the_admin_routes_are_covered_by_the_admin_rows():
    admin_routes = [r for r in every_route() if r.startswith("admin:")]
    assert len(admin_routes) > 50
    admin_rows = {cell.route for cell in CELLS if cell.route.startswith("admin:")}
    assert admin_rows <= set(admin_routes)  # they name real routes
    assert {"admin:index", "admin:elicit_interview_change"} <= admin_rows
    assert all(covered_by(r) in {"rows", "admin rows"} for r in admin_routes)
    assert covered_by("research:brand_new_page") == ""  # a route of ours is not waved through


def test_every_row_names_a_route_a_request_and_every_persona():
    routes = set(every_route())
    assert {cell.route for cell in CELLS} <= routes
    assert {cell.route for cell in TOKEN_CELLS} <= routes
    assert {c.case for c in HTTP_CELLS + TOKEN_CELLS} == set(REQUESTS)
    for cell in CELLS:
        assert cell.persona in PERSONAS, cell
        assert re.fullmatch(r"ok|file|login|land|adm|\d{3}|open|shut|[<>]\w+", cell.outcome)
        assert cell.outcome[0] not in "<>" or cell.outcome[1:] in PLACES, cell
    pairs = [(c.case, c.verb, c.persona) for c in CELLS]
    assert len(pairs) == len(set(pairs))  # no cell said twice
