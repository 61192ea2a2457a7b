"""Stored cross-site scripting (issue 7): whatever people write is shown as text, everywhere.

The world of tests/security/payloads.py holds a payload in every field that participants, staff
or a language model write: messages, cards, comments, notes, names, demographics, panel ids.
Then:

- every page of the site, fetched as the persona who may see it, shows the payloads it is about
  as text, and no script, event handler or script URL came out of them; a guard walks the URL
  resolver so that a new page cannot be left out;
- the interview's websocket: a payload the participant types and one the language model
  streams arrive as text, token by token and rendered whole;
- every admin changelist and change form, likewise;
- the exports: CSV cells that a spreadsheet would run as a formula are neutralised, JSON and XML
  parse with each payload as a plain string, the Markdown target renders without HTML;
- in real Chromium, the main pages open no dialog and break no Content-Security-Policy rule.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from django.conf import settings
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from markdown_it import MarkdownIt
from playwright.sync_api import expect

from elicit.models import ModerationFlag
from graph import exports
from tests.security.payloads import (
    FORMULA_STARTS,
    JAVASCRIPT_URL,
    STORED,
    build_world,
    client_of,
    logged_in,
    payload,
    read,
    shown,
)

# --- Pages ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One page: the URL name it comes from, who opens it, and the payloads it is about."""

    name: str
    who: str
    url: str
    shows: tuple[str, ...]
    htmx: bool = False


def visits(w: SimpleNamespace) -> Iterator[Visit]:
    slug = w.deliberation.slug
    token = w.ada.receipt_token

    def visit(name, who, shows=(), htmx=False, query="", **kwargs) -> Visit:
        return Visit(name, who, reverse(name, kwargs=kwargs) + query, tuple(shows), htmx)

    # Participants
    yield visit("elicit:home", "anonymous", ["dtitle", "ddesc"])
    yield visit(
        "elicit:landing",
        "anonymous",
        ["dtitle", "ddesc", "consent", "qtext", "ctx1", "ctx2", "dlabel", "dlabel2", "dchoice"],
        slug=slug,
    )
    yield visit("elicit:landing", "ada", ["dtitle", "qtext", "ctx1"], slug=slug)
    yield visit(
        "elicit:interview",
        "cy",
        ["dtitle", "qtext", "cy-llm", "cy-msg", "cy-card-msg", "msgerr", "draft-t", "draft-d"],
        slug=slug,
    )
    yield visit(
        "graph:match",
        "bo",
        ["bocard-t", "bocard-d", "bocard-p1", "va-t", "ve-t"],
        slug=slug,
        interview=w.bo_interview.pk,
    )
    yield visit("graph:vote", "bo", ["qtext", "va-t", "va-d", "va-p1", "ve-t"], slug=slug)
    yield visit("graph:vote", "bo", ["va-t", "ve-t"], htmx=True, slug=slug)
    yield visit("graph:judge", "bo", ["ctx1", "story4", "ve-t", "ve-d", "ve-p1"], slug=slug)
    yield visit("graph:judge", "bo", ["story4", "ve-t"], htmx=True, slug=slug)
    yield visit("graph:judgments", "ada", ["jcomment", "jcomment2", "ve-t", "ctx2"], slug=slug)
    yield visit(
        "graph:revise_judgment",
        "ada",
        ["ctx2", "story3", "ve-t", "jcomment", "jrev"],
        slug=slug,
        pk=w.ada_judgment.pk,
    )
    end = ["acard-t", "acard-d", "acard-p1", "va-t", "ve-t", "qtext", "ctx1", "ctx2"]
    yield visit("graph:done", "ada", [*end, "ccode"], slug=slug)
    mine = ["dtitle", "pid", "study", "dchoice", "demo", "acard-t", "acard-d", "ada-msg"]
    yield visit("graph:my_data", "ada", mine, slug=slug)
    yield visit("graph:my_data_receipt", "anonymous", mine, token=token)
    yield visit("graph:delete_my_data", "ada", slug=slug)
    yield visit("graph:delete_receipt", "anonymous", token=token)
    yield visit("graph:receipt", "anonymous", ["dtitle", *end], token=token)

    # Research
    yield visit("research:login", "anonymous")
    yield visit("research:index", "rhea", ["dtitle"])
    yield visit("research:new", "rhea")
    yield visit("research:dashboard", "rhea", ["dtitle", "joberr"], slug=slug)
    yield visit("research:pipeline", "rhea", ["joberr"], htmx=True, slug=slug)
    yield visit(
        "research:edit",
        "rhea",
        ["dtitle", "ddesc", "consent", "ccode", "qtext", "ctx1", "ctx2", "dlabel", "dchoice"],
        slug=slug,
    )
    yield visit(
        "research:results",
        "rhea",
        ["dtitle", "qtext", "ctx1", "ctx2", "va-t", "ve-t", "dlabel", "dchoice"],
        slug=slug,
    )
    graph = ["qtext", "ctx1", "ctx2", "va-t", "ve-t"]
    yield visit("research:explorer", "rhea", ["dtitle", *graph], slug=slug)
    yield visit("research:explorer", "rhea", graph, htmx=True, slug=slug)
    detail = ["va-t", "va-d", "va-p1", "acard-t", "acard-d", "story1", "story2", "ve-t"]
    yield visit("research:explorer_value", "rhea", detail, slug=slug, pk=w.va.pk)
    yield visit("research:explorer_value", "rhea", detail, htmx=True, slug=slug, pk=w.va.pk)
    yield visit("research:export_index", "rhea", ["dtitle"], slug=slug)
    yield visit(
        "research:target",
        "rhea",
        ["dtitle", "qtext", "ctx1", "va-t", "va-d", "va-p1", "acard-t"],
        slug=slug,
    )
    yield visit("research:tokens", "rhea", ["token"])
    yield visit("research:pilot", "rhea", ["dtitle"], slug=slug)
    yield visit(
        "research:pilot_report", "rhea", ["dtitle", "piloterr"], slug=slug, run_id=w.pilot.pk
    )

    # Moderation
    queue = ["fdetail", "freason", "fmsg", "fjudg", "fstory", "acard-t", "cy-msg", "jcomment"]
    yield visit("moderation:queue", "mo", [*queue, "story1", "ve-t"], query="?state=all")
    yield visit("moderation:queue", "mo", queue, htmx=True, query="?state=all")
    flagged = {
        ("valuescard", w.ada_card.pk): ["fdetail", "freason", "acard-t", "acard-d", "acard-p1"],
        ("message", w.cy_message.pk): ["fmsg", "cy-msg", "cy-llm"],
        ("upgradejudgment", w.ada_judgment.pk): ["fjudg", "jcomment", "ctx2"],
        ("upgradehypothesis", w.s1.pk): ["fstory", "story1", "ctx1", "va-t", "ve-t"],
        ("canonicalvalue", w.ve.pk): ["ve-t", "ve-d"],  # a participant's report
    }
    for flag in ModerationFlag.objects.filter(deliberation=w.deliberation):
        shows = flagged[flag.content_type.model, flag.object_id]
        yield visit("moderation:flag", "mo", shows, pk=flag.pk)
    for card, shows in [
        (w.ada_card, ["acard-t", "acard-d", "acard-p1"]),
        (w.bo_card, ["bocard-t", "crev-t", "crev-d", "crev-p", "crev-r"]),
        (w.fay_card, ["faycard-t", "faycard-d", "ereason"]),
    ]:
        yield visit("moderation:edit_card", "mo", shows, pk=card.pk)
    yield visit("moderation:values", "mo", ["dtitle", "va-t", "ve-t", "vm-t"])
    yield visit("moderation:value", "mo", ["va-t", "va-d", "va-p1", "acard-t"], pk=w.va.pk)
    yield visit("moderation:value", "mo", ["vm-t", "hreason", "malcard-t"], pk=w.vm.pk)
    yield visit("moderation:log", "mo", ["ban", "hreason", "ereason", "umo", "faycard-t", "vm-t"])


# Files: checked by the export test below.
FILES = {
    "research:export",
    "graph:download_my_data",
    "graph:download_receipt",
    "moderation:log_csv",
}

# URLs that are not pages showing stored text, and why.
NOT_PAGES = {
    "healthz": "JSON health of the services",
    "set_language": "POST: switches the language and redirects",
    "research:logout": "POST: logs out",
    "research:openapi": "the static API description",
    "research:run_pipeline": "POST: queues the pipeline",
    "research:score_with_flagged": "POST: queues a scoring run",
    "research:revoke_token": "POST: revokes a token",
    "elicit:join": "POST: joins, redirects (its form errors re-render the landing page)",
    "elicit:send": "POST: stores a message, redirects to the interview",
    "elicit:confirm_card": "POST: confirms the card (errors re-render the interview's card)",
    "graph:report": "POST: reports a value or story, redirects back",
    "moderation:claim_next": "POST",
    "moderation:claim": "POST",
    "moderation:release": "POST",
    "moderation:act": "POST",
    "moderation:split_card": "POST",
    "moderation:merge_value": "POST",
    "moderation:undo": "POST",
}


def url_names(patterns: Iterable, namespace: str | None = None) -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # swept model by model from the admin's registry, below
            yield from url_names(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


# --- Checks -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _few_bootstrap_samples(settings):
    settings.BOOTSTRAP_SAMPLES = 20


@pytest.fixture
def world(db):
    return build_world()


def personas(w: SimpleNamespace) -> dict[str, Client]:
    return {
        "anonymous": Client(),
        "ada": client_of(w.ada),
        "bo": client_of(w.bo),
        "cy": client_of(w.cy),
        "rhea": logged_in(w.rhea),
        "mo": logged_in(w.mo),
        "root": logged_in(w.root),
    }


def problems_of(label: str, response, shows: Iterable[str]) -> list[str]:
    """What is wrong with one HTML response: not a page, payload markup that a browser would
    run, or a payload the page is about that is not there as text."""
    if response.status_code != 200:
        return [f"{label}: answered {response.status_code}"]
    if not response["Content-Type"].startswith("text/html"):
        return [f"{label}: {response['Content-Type']}, not a page"]
    page = read(response.content.decode())
    found = [f"{label}: {problem}" for problem in page.problems]
    found += [
        f"{label}: does not show {shown(code)!r}" for code in shows if not page.shows(shown(code))
    ]
    return found


# Who sees which part of the site: one test per part.
AREAS = {
    "participant": {"anonymous", "ada", "bo", "cy"},
    "research": {"rhea"},
    "moderation": {"mo"},
}


def sweep(w, area: str) -> tuple[list[str], set[str]]:
    clients = personas(w)
    found, names = [], set()
    for visit in visits(w):
        if visit.who not in AREAS[area]:
            continue
        headers = {"HX-Request": "true"} if visit.htmx else {}
        response = clients[visit.who].get(visit.url, headers=headers)
        label = f"{visit.url}{' (htmx)' if visit.htmx else ''} as {visit.who}"
        found += problems_of(label, response, visit.shows)
        names.add(visit.name)
    return found, names


@pytest.mark.django_db
def test_the_sweep_covers_every_url_of_the_site(world):
    swept = {visit.name for visit in visits(world)}
    assert {visit.who for visit in visits(world)} <= set().union(*AREAS.values())
    assert not swept & FILES.union(NOT_PAGES), "a URL is listed twice"
    known = swept | FILES | NOT_PAGES.keys()
    urls = set(url_names(get_resolver().url_patterns))
    assert urls - known == set(), "new URLs: sweep them here, or say why they show no text"
    assert known - urls == set(), "these URLs are gone: take them out of the sweep"


def test_the_payloads_break_out_of_everything_when_not_escaped():
    """The checks can fail: the same payloads written into a page unescaped are caught, each
    way they could run."""
    code = "probe"
    raw = payload(code)
    assert read(f"<p>{raw}</p>").problems
    assert read(f'<input value="{raw}">').problems
    assert read(f"<textarea>{raw}</textarea>").problems
    assert read(f"<title>{raw}</title>").problems
    assert read(f'<a href="{JAVASCRIPT_URL}">panel</a>').problems
    short = payload(code, room=60)
    assert read(f"<p title='{short}'>x</p>").problems
    escaped = read(f"<p>{raw.replace('&', '&amp;').replace('<', '&lt;')}</p>")
    assert escaped.problems == [] and escaped.shows(shown(code))


@pytest.mark.django_db
def test_participant_pages_show_every_payload_as_text(world):
    found, names = sweep(world, "participant")
    assert found == []
    assert {"graph:done", "graph:receipt", "elicit:interview"} <= names


@pytest.mark.django_db
def test_research_pages_show_every_payload_as_text(world):
    found, names = sweep(world, "research")
    assert found == []
    assert {"research:explorer", "research:results", "research:pilot_report"} <= names


@pytest.mark.django_db
def test_moderation_pages_show_every_payload_as_text(world):
    found, names = sweep(world, "moderation")
    assert found == []
    assert {"moderation:queue", "moderation:flag", "moderation:log"} <= names


@pytest.mark.django_db
def test_a_completion_redirect_that_is_not_a_web_address_never_becomes_a_link(world):
    """Ada is a panel participant: her end page links back to the panel. A `javascript:` URL
    stored as the redirect (the forms refuse one, but the ORM or an import would not) shows
    the completion code instead, and finishing does not redirect to it."""
    ada = client_of(world.ada)
    done = reverse("graph:done", args=[world.deliberation.slug])
    page = ada.get(done)
    assert "javascript:" not in page.content.decode()
    assert read(page.content.decode()).shows(shown("ccode"))
    assert ada.post(done, {"skip": "1"})["Location"] == done
    world.deliberation.completion_redirect_url = "https://panel.example/done?cc=42"
    world.deliberation.save()
    page = ada.get(done)
    assert 'href="https://panel.example/done?cc=42"' in page.content.decode()
    assert ada.post(done, {"skip": "1"})["Location"] == "https://panel.example/done?cc=42"


@pytest.mark.django_db
def test_the_research_form_refuses_a_javascript_completion_redirect(world):
    rhea = logged_in(world.rhea)
    url = reverse("research:edit", args=[world.deliberation.slug])
    form = rhea.get(url).context["form"]
    data = {f"d-{name}": value for name, value in form.initial.items() if value is not None}
    data.update({"d-completion_redirect_url": JAVASCRIPT_URL, "q-TOTAL_FORMS": "0"})
    data.update({"q-INITIAL_FORMS": "0", "f-TOTAL_FORMS": "0", "f-INITIAL_FORMS": "0"})
    response = rhea.post(url, data)
    assert response.status_code == 422
    assert response.context["form"].errors["completion_redirect_url"]


@pytest.mark.django_db(transaction=True)
async def test_the_interviews_websocket_streams_payloads_as_text(llm):
    """What the language model writes is stored text like any other: streamed token by token,
    echoed, and rendered again when the reply is saved, it never becomes markup."""
    from asgiref.sync import sync_to_async

    from elicit.demo import seed_demo
    from tests.elicit.helpers import collect, communicator, join, send

    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    llm.queue_text(payload("stream"), tokens_per_second=200)
    comm = communicator(ada)
    assert (await comm.connect())[0]
    try:
        await collect(comm, lambda text: 'id="transcript"' in text)
        await send(comm, payload("typed"))
        frames = await collect(comm, lambda text: "Send</button>" in text, timeout=15)
    finally:
        await comm.disconnect()
    page = read("".join(frames))
    assert page.problems == []
    assert page.shows(shown("typed")) and page.shows(shown("stream"))


# --- The admin ----------------------------------------------------------------------------------


def admin_objects(w) -> dict[str, object]:
    """For each admin model, the world's object with the most payloads in it."""
    return {
        "deliberation": w.deliberation,
        "participant": w.ada,
        "valuescard": w.ada_card,
        "canonicalvalue": w.va,
        "interview": w.cy_interview,
        "upgradehypothesis": w.s1,
        "upgradejudgment": w.ada_judgment,
        "user": w.mo,
        "context": w.hard,
        "question": w.question,
        "invite": w.invite,
        "apitoken": w.token,
        "pilotrun": w.pilot,
        "moderationaction": w.hide,
    }


ADMIN_SHOWS = {
    "user": (["umo", "urhea"], ["umo", "ufirst"]),
    "deliberation": (["dtitle"], ["dtitle", "ddesc", "consent", "ccode", "qtext", "ctx1"]),
    "question": (["qtext"], ["qtext", "ctx1"]),
    "context": (["ctx1", "ctx2"], ["ctx1"]),
    "invite": (["invite"], ["invite"]),
    "participant": (["dtitle"], ["pid", "study", "session", "dchoice", "demo"]),
    "interview": (["qtext"], ["cy-msg", "cy-llm", "draft-t", "draft-d"]),
    "valuescard": (["acard-t", "va-t"], ["acard-t", "acard-d", "acard-p1"]),
    "surveyresponse": ([], ["survey"]),
    "moderationflag": (["freason"], ["freason", "fdetail"]),
    "moderationaction": (["umo", "vm-t"], ["hreason", "umo"]),
    "canonicalvalue": (["va-t", "ve-t"], ["va-t", "va-d", "va-p1"]),
    "dedupdecision": (["evecard-t"], ["dedup"]),
    "upgradehypothesis": (["va-t", "ctx1"], ["story1"]),
    "upgradejudgment": (["ve-t"], ["jcomment", "jrev"]),
    "wisestvote": (["qtext"], ["vrev"]),
    "pipelinejob": (["dtitle"], []),
    "scoringrun": (["dtitle"], ["dtitle"]),
    "pilotrun": (["urhea"], ["piloterr"]),
    "apitoken": (["token"], ["token"]),
    "group": ([], []),
}


@pytest.mark.django_db
def test_admin_changelists_and_change_forms_show_every_payload_as_text(world):
    root = logged_in(world.root)
    picks = admin_objects(world)
    found: list[str] = []
    for model in admin.site._registry:
        opts = model._meta
        name = opts.model_name
        assert name in ADMIN_SHOWS, f"{name} is in the admin: say what its pages show"
        on_list, on_form = ADMIN_SHOWS[name]
        obj = picks.get(name) or model._default_manager.order_by("pk").first()
        assert obj is not None, f"the world has no {name}"
        info = f"admin:{opts.app_label}_{name}"
        for url, shows in [
            (reverse(f"{info}_changelist"), on_list),
            (reverse(f"{info}_change", args=[obj.pk]), on_form),
        ]:
            found += problems_of(url, root.get(url), shows)
    # Deleting a deliberation lists everything that would go with it, by name.
    url = reverse("admin:elicit_deliberation_delete", args=[world.deliberation.pk])
    found += problems_of(url, root.get(url), ["dtitle", "acard-t"])
    assert found == []


# --- Exports ------------------------------------------------------------------------------------


def download(client: Client, url: str, method: str = "get") -> bytes:
    response = getattr(client, method)(url)
    assert response.status_code == 200, (url, response.status_code)
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_problems(name: str, data: bytes) -> tuple[list[str], list[str]]:
    """Cells a spreadsheet would run as a formula (numbers aside), and every cell."""
    problems, cells = [], []
    for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
        for cell in row:
            cells.append(cell)
            if cell.startswith(FORMULA_STARTS):
                try:
                    float(cell)
                except ValueError:
                    problems.append(f"{name}: a formula {cell[:60]!r}")
    return problems, cells


def strings(value) -> Iterator[str]:
    """Every string in parsed JSON, keys too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def xml_strings(data: bytes) -> list[str]:
    # Our own export, parsed to prove it is well-formed (it raises otherwise).
    root = ElementTree.fromstring(data)  # noqa: S314
    found = []
    for element in root.iter():
        found += list(element.attrib.values())
        found += [element.text or "", element.tail or ""]
    return found


def holds(texts: Iterable[str], *codes: str) -> list[str]:
    """The fields whose payload, exactly as stored, none of *texts* carries."""
    texts = list(texts)
    return [code for code in codes if not any(STORED[code] in text for text in texts)]


@pytest.mark.django_db
def test_exports_neutralise_formulas_and_carry_the_payloads_as_plain_data(world):
    root = logged_in(world.root)
    base = f"/research/d/{world.deliberation.slug}/export/"
    missing: list[str] = []

    # tables.zip: every text cell a spreadsheet would run is neutralised, and the payloads that
    # start with a formula character are there with the leading apostrophe.
    with zipfile.ZipFile(io.BytesIO(download(root, base + "tables.zip"))) as tables:
        problems, cells = [], []
        for name in tables.namelist():
            more, some = csv_problems(name, tables.read(name))
            problems += more
            cells += some
    assert problems == []
    neutralised = {
        "ctx1": "=",
        "qtext": "+",
        "dchoice": "+",
        "demo": "\r",
        "acard-t": "=",
        "acard-d": "+",
        "va-t": "-",
        "jcomment": "@",
        "survey": "\t",
    }
    for code, lead in neutralised.items():
        assert STORED[code].startswith(lead)
        if "'" + STORED[code] not in cells:
            missing.append(f"tables.zip: {code} neutralised")
    missing += holds(cells, "pid", "study", "session", "ve-d", "jcomment2")

    # The moderation log as CSV.
    problems, cells = csv_problems("log.csv", download(logged_in(world.mo), "/moderation/log.csv"))
    assert problems == []
    for code, lead in {"hreason": "=", "ban": "-"}.items():
        assert STORED[code].startswith(lead)
        if "'" + STORED[code] not in cells:
            missing.append(f"log.csv: {code} neutralised")

    # JSON: parses, the payloads are plain strings, and no "<" could open a tag in a page.
    graph_json = download(root, base + "graph.json")
    target_json = download(root, base + "target.json")
    transcripts = download(root, base + "transcripts.jsonl")
    for name, data in [("graph.json", graph_json), ("target.json", target_json)]:
        assert b"<" not in data, name
    assert b"<" not in transcripts
    texts = list(strings(json.loads(graph_json)))
    missing += [f"graph.json: {p}" for p in holds(texts, "va-t", "va-d", "va-p1", "ve-t")]
    texts = list(strings(json.loads(target_json)))
    missing += [f"target.json: {p}" for p in holds(texts, "va-t", "va-p1", "acard-t", "ctx2")]
    texts = [s for line in transcripts.splitlines() for s in strings(json.loads(line))]
    missing += [
        f"transcripts.jsonl: {p}" for p in holds(texts, "cy-msg", "cy-llm", "tool-t", "eve-msg")
    ]

    # XML: well-formed, the payloads as attribute values and text.
    for name in ("graph.graphml", "graph.gexf"):
        texts = xml_strings(download(root, base + name))
        missing += [f"{name}: {p}" for p in holds(texts, "va-t", "va-d", "ve-t", "ctx1")]

    # Markdown: rendered (HTML allowed, as a careless renderer would), it holds no markup.
    markdown = download(root, base + "target.md").decode()
    rendered = MarkdownIt("commonmark", {"html": True}).render(markdown)
    page = read(rendered)
    assert page.problems == []
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    if not page.shows(shown("va-t")):
        missing.append("target.md: va-t")

    # A participant's own data, as a file.
    ada = client_of(world.ada)
    mine = json.loads(download(ada, f"/d/{world.deliberation.slug}/my-data/download/", "post"))
    texts = list(strings(mine))
    missing += [
        f"my data: {p}"
        for p in holds(texts, "pid", "demo", "acard-t", "jrev", "jcomment", "survey", "ada-msg")
    ]
    assert missing == []


@pytest.mark.django_db
def test_the_json_exports_escape_what_could_close_a_script_element():
    """Written into a page's <script>, an export's text cannot end the element."""
    text = exports.dumps({"t": "</script><script>alert('xss-json')</script>"})
    assert "</script" not in text and json.loads(text) == {
        "t": "</script><script>alert('xss-json')</script>"
    }


# --- In Chromium --------------------------------------------------------------------------------

# Elements of the live DOM (after every script and swap) that a payload made runnable.
FIND_RUNNABLE = """() => {
  const links = ["href", "src", "action", "formaction"];
  const runnable = (el) => el.tagName === "SCRIPT" ? el.textContent.includes("xss-") :
    [...el.attributes].some((a) => (a.name.startsWith("on") && a.value.includes("xss-")) ||
      (links.includes(a.name) && a.value.trim().toLowerCase().startsWith("javascript:")));
  const found = [...document.querySelectorAll("*")].filter(runnable);
  return found.map((el) => el.outerHTML.slice(0, 200));
}"""


def cookie(live_server_url: str, client: Client) -> dict:
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"name": settings.SESSION_COOKIE_NAME, "value": value, "url": live_server_url}


def browse(new_page, live_server_url, orm, pages: list[tuple[str, Client | None, str]]):
    """Open each page as its persona (a client whose session the browser takes over), wait a
    moment for anything injected to fire, and collect what went wrong."""
    dialogs: list[str] = []
    found: list[str] = []
    contexts: dict[int, object] = {}
    for url, client, code in pages:
        key = id(client)
        if key not in contexts:
            page = new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            if client is not None:
                page.context.add_cookies([cookie(live_server_url, client)])
            contexts[key] = page
        page = contexts[key]
        response = page.goto(url)
        if response is None or response.status != 200:
            found.append(f"{url}: {response and response.status}")
            continue
        page.wait_for_load_state("networkidle")
        found += [f"{url}: {html}" for html in page.evaluate(FIND_RUNNABLE)]
        if shown(code) not in page.locator("body").text_content():
            found.append(f"{url}: does not show {shown(code)!r}")
    return dialogs, found


def browser_world(orm):
    """The world, and logged-in clients of its personas (made in the ORM's thread)."""

    def make():
        w = build_world()
        return w, {
            name: client
            for name, client in personas(w).items()
            if name != "anonymous" and client.cookies.get(settings.SESSION_COOKIE_NAME)
        }

    return orm(make)


@pytest.mark.browser
def test_in_chromium_no_payload_runs_on_the_participant_pages(
    new_page, live_server_url, orm, request, settings
):
    settings.BOOTSTRAP_SAMPLES = 20
    w, clients = browser_world(orm)
    slug = w.deliberation.slug
    ada, bo, cy = clients["ada"], clients["bo"], clients["cy"]
    pages = [
        ("/", None, "dtitle"),
        (f"/d/{slug}/", None, "consent"),
        (f"/d/{slug}/interview/", cy, "cy-msg"),  # the websocket's catch-up renders it again
        (f"/d/{slug}/interview/{w.bo_interview.pk}/match/", bo, "bocard-t"),
        (f"/d/{slug}/vote/", bo, "va-t"),
        (f"/d/{slug}/judge/", bo, "story4"),
        (f"/d/{slug}/judgments/{w.ada_judgment.pk}/", ada, "jrev"),
        (f"/d/{slug}/done/", ada, "acard-t"),
        (f"/d/{slug}/my-data/", ada, "pid"),
        (f"/r/{w.ada.receipt_token}/", None, "va-t"),
    ]
    dialogs, found = browse(new_page, live_server_url, orm, pages)
    assert dialogs == []
    assert found == []
    assert request.node.browser_session.console_errors() == []


@pytest.mark.browser
def test_in_chromium_no_payload_runs_on_the_staff_pages(
    new_page, live_server_url, orm, request, settings
):
    settings.BOOTSTRAP_SAMPLES = 20
    w, clients = browser_world(orm)
    slug = w.deliberation.slug
    rhea, mo, root = clients["rhea"], clients["mo"], clients["root"]
    flag = orm(lambda: ModerationFlag.objects.get(detail=STORED["fdetail"]))
    pages = [
        (f"/research/d/{slug}/", rhea, "joberr"),
        (f"/research/d/{slug}/results/", rhea, "dchoice"),
        (f"/research/d/{slug}/explorer/", rhea, "ctx1"),
        (f"/research/d/{slug}/explorer/value/{w.va.pk}/", rhea, "story1"),
        (f"/research/d/{slug}/target/", rhea, "va-d"),
        (f"/research/d/{slug}/pilot/{w.pilot.pk}/", rhea, "piloterr"),
        ("/moderation/?state=all", mo, "fdetail"),
        (f"/moderation/flags/{flag.pk}/", mo, "freason"),
        (f"/moderation/values/{w.vm.pk}/", mo, "hreason"),
        ("/moderation/log/", mo, "ereason"),
        ("/admin/elicit/valuescard/", root, "acard-t"),
        (f"/admin/elicit/participant/{w.ada.pk}/change/", root, "dchoice"),
        (f"/admin/elicit/deliberation/{w.deliberation.pk}/change/", root, "ctx1"),
    ]
    dialogs, found = browse(new_page, live_server_url, orm, pages)
    # The explorer's script swaps a value's detail in: click one, as Rhea would.
    page = new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.context.add_cookies([cookie(live_server_url, rhea)])
    page.goto(f"/research/d/{slug}/explorer/")
    page.locator(f'svg.moral-graph [data-value="{w.ve.pk}"]').first.click()
    # The detail arrives by an htmx request that may not have started when the click returns:
    # wait for it (a load-state wait could pass before it began), then let the swap settle.
    expect(page.locator("body")).to_contain_text(shown("ve-d"))
    page.wait_for_load_state("networkidle")
    found += page.evaluate(FIND_RUNNABLE)
    assert dialogs == []
    assert found == []
    assert request.node.browser_session.console_errors() == []
