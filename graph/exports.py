"""Exports of a deliberation for researchers: the moral graph of a scoring run (JSON, GraphML,
GEXF), the raw tables (a zip of CSV files), the interview transcripts (JSON Lines) and the
alignment target (JSON, Markdown). The schema of every format is in docs/exports.md.

Every writer is a generator of byte chunks, so a view can stream it and a management command
can write it to a file; rows are read from the database in chunks (`QuerySet.iterator`), so
memory stays flat however large the deliberation grows (bench/exports.py measures it).

Rules every writer keeps:
- The numbers of the graph come from the scoring run as stored (`ScoringRun.results`), never
  recomputed, so an export cannot disagree with what the algorithms produced.
- Participants appear only as a pseudonym (`pseudonym`): stable per deliberation, and
  meaningless without the server's SECRET_KEY. Panel ids only when asked for (`panel_ids`),
  which the views allow to superusers and holders of ``elicit.view_panel_ids``.
- Banned participants stay in the data, marked (``participant_banned``). Hidden content is
  kept as a row, marked ``hidden``, with its free text withheld (an empty string): moderators
  hide text for what it says, and keeping the row lets counts reconcile with the run.
- Text from participants cannot act on a reader's tools: CSV cells that a spreadsheet would
  run as a formula get a leading apostrophe, JSON escapes ``<``, ``>`` and ``&``, XML is
  escaped, and the Markdown of the target is escaped so it cannot carry HTML or links.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import json
import operator
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from elicit.models import (
    Context,
    Deliberation,
    Interview,
    Message,
    Participant,
    Question,
    SurveyResponse,
    ValuesCard,
)
from graph.models import (
    CanonicalValue,
    JudgmentRevision,
    ScoringRun,
    UpgradeJudgment,
    WisestVote,
)

FORMAT_VERSION = 1
CHUNK_ROWS = 1000  # rows read from the database per query, and written per yielded chunk
CHUNK_BYTES = 64 * 1024


class NoScoringRun(LookupError):
    """The deliberation has no finished scoring run yet (or not the one asked for)."""


# --- Runs ----------------------------------------------------------------------------------------


def finished_runs(deliberation: Deliberation):
    return ScoringRun.objects.filter(deliberation=deliberation, status=ScoringRun.Status.DONE)


def resolve_run(deliberation: Deliberation, ref: str | None = None) -> ScoringRun:
    """The run named *ref* (its name, or its id), or the latest run: the newest finished run
    without flagged votes (see CONTRACT_RESULTS). Raises `NoScoringRun`."""
    runs = finished_runs(deliberation)
    if ref:
        match = Q(name=ref) | Q(pk=int(ref)) if ref.isdigit() else Q(name=ref)
        run = runs.filter(match).order_by("-started_at", "-id").first()
    else:
        run = runs.filter(include_flagged=False).first()
    if run is None:
        raise NoScoringRun(ref or "")
    return run


def run_summary(run: ScoringRun) -> dict[str, Any]:
    """What identifies a run and makes it reproducible."""
    results = run.results or {}
    summary = {
        "id": run.pk,
        "name": run.name,
        "estimator": run.estimator,
        "include_flagged": run.include_flagged,
        "params": run.params,
        "code_version": run.code_version,
        "algorithm_version": results.get("algorithm_version", ""),
        "n_judgments": results.get("n_judgments"),
        "input_counts": run.input_counts,
        "input_digest": run.input_digest,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }
    if "primary" in results:
        summary["primary"] = results["primary"]
    return summary


# --- Pseudonyms, cells, escaping ----------------------------------------------------------------


def _pseudonym_hmac():
    key = hashlib.sha256(b"graph.exports.pseudonym" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def pseudonym(deliberation_id: int, public_id: Any, *, base=None) -> str:
    """A participant's id in exports: an HMAC (keyed by SECRET_KEY) of the deliberation and the
    participant's random public_id. Stable across exports and runs of one deliberation; it
    cannot be reversed, nor linked to anything else the system shows, without the key.
    *base* (from `_pseudonym_hmac`) saves deriving the key again for every row."""
    mac = (base or _pseudonym_hmac()).copy()
    mac.update(f"{deliberation_id}:{public_id}".encode())
    return "p_" + mac.hexdigest()[:16]


def may_see_panel_ids(user) -> bool:
    """Panel ids identify people outside this system (e.g. on Prolific)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.has_perm("elicit.view_panel_ids"))
    )


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """A text cell a spreadsheet shows as text: formula starts get a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_START) else value


def cell(value: Any) -> Any:
    """One CSV cell: booleans as true/false (read as logical by pandas and R), None empty,
    times in ISO 8601, lists and dicts as JSON, text neutralised (`safe_text`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, list | dict):
        return safe_text(json.dumps(value, ensure_ascii=False))
    if isinstance(value, str):
        return safe_text(value)
    return value


_JSON_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def dumps(value: Any) -> str:
    """Compact JSON whose strings cannot open an HTML tag if the text lands in a page. Keys
    are sorted: PostgreSQL's jsonb does not keep the order in which a run's results were
    written, and an export must be the same bytes whatever the database."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).translate(
        _JSON_UNSAFE
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _withheld(hidden: bool, text: Any) -> Any:
    """The free text of hidden content is not exported (see the module docstring)."""
    if not hidden:
        return text
    return [] if isinstance(text, list) else ""


def _buffered(pieces: Iterable[str | bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Join small pieces into chunks of about *size* bytes (fewer, larger writes)."""
    buffer: list[bytes] = []
    length = 0
    for piece in pieces:
        data = piece.encode() if isinstance(piece, str) else piece
        buffer.append(data)
        length += len(data)
        if length >= size:
            yield b"".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield b"".join(buffer)


# --- The graph of a run ---------------------------------------------------------------------------


@dataclasses.dataclass
class GraphData:
    """A run's graph: its contexts (the stored per-context results, plus the context's text and
    questions), its values (fields from the database, scores from the run) and its edges (the
    stored edge table, one dict per row)."""

    run: ScoringRun
    contexts: list[dict[str, Any]]
    values: list[dict[str, Any]]
    edges: list[dict[str, Any]]


EDGE_COLUMNS = (
    "context",
    "from_value",
    "to_value",
    "upgrade",
    "not_upgrade",
    "unsure",
    "reverse_upgrade",
    "total",
    "likelihood",
    "entropy",
    "kept",
)


def edge_columns(results: Mapping[str, Any]) -> list[str]:
    """The stored edge columns in a fixed order (the edge table's, then any other sorted), since
    jsonb does not keep the order they were written in."""
    stored = results.get("edges") or {}
    return [c for c in EDGE_COLUMNS if c in stored] + sorted(set(stored) - set(EDGE_COLUMNS))


def edge_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored edge table (columns) as rows, every stored column kept under its name."""
    names = edge_columns(results)
    if not names:
        return []
    columns = [results["edges"][name] for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def value_scores(context: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Per value of one stored context result: its score, whether it won, and the Bradley-Terry
    and bootstrap figures when the run has them (aligned with ``values``)."""
    ids = context.get("values", [])
    winners = set(context.get("winners", []))
    out: dict[int, dict[str, Any]] = {}
    for i, value_id in enumerate(ids):
        entry: dict[str, Any] = {"score": context["scores"][i], "winner": value_id in winners}
        bt = context.get("bradley_terry")
        if bt:
            entry["bt_strength"] = bt["strength"][i]
            entry["bt_se"] = bt.get("se", [None] * len(ids))[i]
            entry["bt_winner"] = value_id in set(bt.get("winners", []))
        boot = context.get("bootstrap")
        if boot:
            for key in ("ci_low", "ci_high", "win_rate"):
                if key in boot:
                    entry[key] = boot[key][i]
        out[value_id] = entry
    return out


def _contexts_info(deliberation: Deliberation) -> dict[int, dict[str, Any]]:
    info = {}
    for context in Context.objects.filter(deliberation=deliberation).prefetch_related(
        Prefetch("questions", queryset=Question.objects.order_by("position", "id"))
    ):
        info[context.pk] = {
            "text": context.text,
            "questions": [q.slug for q in context.questions.all()],
        }
    return info


def graph_data(run: ScoringRun) -> GraphData:
    results = run.results or {}
    info = _contexts_info(run.deliberation)
    contexts = []
    scores: dict[int, dict[str, dict[str, Any]]] = {}
    for stored in results.get("contexts", []):
        context_id = stored["context_id"]
        context = info.get(context_id, {"text": "", "questions": []})
        contexts.append({**stored, "text": context["text"], "questions": context["questions"]})
        for value_id, entry in value_scores(stored).items():
            scores.setdefault(value_id, {})[str(context_id)] = entry
    edges = edge_rows(results)
    ids = set(scores) | {e["from_value"] for e in edges} | {e["to_value"] for e in edges}
    values = []
    for value in (
        CanonicalValue.objects.filter(pk__in=ids).annotate(n_cards=Count("cards")).order_by("pk")
    ):
        hidden = value.hidden_at is not None
        per_context = scores.get(value.pk, {})
        values.append(
            {
                "id": value.pk,
                "title": _withheld(hidden, value.title),
                "description": _withheld(hidden, value.description),
                "policies": _withheld(hidden, value.policies),
                "hidden": hidden,
                "merged_into": value.merged_into_id,
                "n_cards": value.n_cards,
                "scores": {c: e["score"] for c, e in per_context.items()},
                "winner_in": [int(c) for c, e in per_context.items() if e["winner"]],
                "contexts": per_context,
            }
        )
    return GraphData(run=run, contexts=contexts, values=values, edges=edges)


def _deliberation_info(deliberation: Deliberation) -> dict[str, Any]:
    return {"slug": deliberation.slug, "title": deliberation.title}


def graph_json(run: ScoringRun) -> Iterator[bytes]:
    data = graph_data(run)

    def pieces() -> Iterator[str]:
        yield '{"format":"moralgraph.graph","format_version":' + str(FORMAT_VERSION) + ","
        yield '"deliberation":' + dumps(_deliberation_info(run.deliberation)) + ","
        yield '"run":' + dumps(run_summary(run)) + ","
        yield '"contexts":' + dumps(data.contexts) + ',\n"values":['
        for i, value in enumerate(data.values):
            yield ("," if i else "") + "\n" + dumps(value)
        yield '],\n"edges":['
        for i, edge in enumerate(data.edges):
            yield ("," if i else "") + "\n" + dumps(edge)
        yield "]}\n"

    return _buffered(pieces())


# GraphML and GEXF share one description of the attributes: (name, type, getter).
XmlAttr = tuple[str, str, Callable[[dict[str, Any]], Any]]
EDGE_INT_COLUMNS = ("upgrade", "not_upgrade", "unsure", "reverse_upgrade", "total")


def _node_attrs(data: GraphData) -> list[XmlAttr]:
    attrs: list[XmlAttr] = [
        ("label", "string", lambda v: v["title"]),
        ("value_id", "long", lambda v: v["id"]),
        ("description", "string", lambda v: v["description"]),
        ("policies", "string", lambda v: json.dumps(v["policies"], ensure_ascii=False)),
        ("hidden", "boolean", lambda v: v["hidden"]),
        ("n_cards", "long", lambda v: v["n_cards"]),
        ("winner_in", "string", lambda v: ",".join(str(c) for c in v["winner_in"])),
    ]
    for context in data.contexts:
        key = str(context["context_id"])
        attrs.append((f"score_c{key}", "double", lambda v, k=key: v["scores"].get(k)))
    return attrs


def _edge_attrs(data: GraphData) -> list[XmlAttr]:
    texts = {c["context_id"]: c["text"] for c in data.contexts}
    attrs: list[XmlAttr] = [
        ("context_id", "long", lambda e: e["context"]),
        ("context", "string", lambda e: texts.get(e["context"], "")),
    ]
    attrs += [(name, "long", lambda e, n=name: e[n]) for name in EDGE_INT_COLUMNS]
    attrs += [
        ("likelihood", "double", lambda e: e["likelihood"]),
        ("entropy", "double", lambda e: e["entropy"]),
        ("kept", "boolean", lambda e: e["kept"]),
    ]
    return attrs


def edge_weight(edge: Mapping[str, Any]) -> float:
    """The weight PageRank used: the likelihood of a kept edge, 0 for a dropped one."""
    return float(edge["likelihood"]) if edge["kept"] else 0.0


# Characters XML 1.0 cannot carry at all, even escaped: a parser would reject the whole file.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("", str(value))


def _xml_plain(value: Any) -> str:
    """A value as XML data, before escaping."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return _xml_text(value)


def _xml_value(value: Any) -> str:
    """A value as escaped XML character data."""
    return xml_escape(_xml_plain(value))


def graph_graphml(run: ScoringRun) -> Iterator[bytes]:
    data = graph_data(run)
    node_attrs, edge_attrs = _node_attrs(data), _edge_attrs(data)
    edge_attrs = [*edge_attrs, ("weight", "double", edge_weight)]

    def pieces() -> Iterator[str]:
        yield (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
            'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
        )
        for kind, attrs in (("node", node_attrs), ("edge", edge_attrs)):
            for name, type_, _get in attrs:
                yield (
                    f'<key id="{kind}_{name}" for="{kind}" '
                    f'attr.name="{name}" attr.type="{type_}"/>\n'
                )
        yield '<graph id="moral-graph" edgedefault="directed">\n'
        for value in data.values:
            yield f'<node id="v{value["id"]}">'
            for name, _type, get in node_attrs:
                content = get(value)
                if content is not None:
                    yield f'<data key="node_{name}">{_xml_value(content)}</data>'
            yield "</node>\n"
        for i, edge in enumerate(data.edges):
            yield f'<edge id="e{i}" source="v{edge["from_value"]}" target="v{edge["to_value"]}">'
            for name, _type, get in edge_attrs:
                yield f'<data key="edge_{name}">{_xml_value(get(edge))}</data>'
            yield "</edge>\n"
        yield "</graph>\n</graphml>\n"

    return _buffered(pieces())


def graph_gexf(run: ScoringRun) -> Iterator[bytes]:
    data = graph_data(run)
    node_attrs = _node_attrs(data)[1:]  # the title is the node's own label
    edge_attrs = _edge_attrs(data)

    def attvalues(attrs: list[XmlAttr], item: dict[str, Any]) -> str:
        parts = []
        for i, (_name, _type, get) in enumerate(attrs):
            content = get(item)
            if content is not None:
                # quoteattr escapes (and quotes) the plain value: escaping it first would
                # show "&lt;" where the text has "<".
                parts.append(f'<attvalue for="{i}" value={quoteattr(_xml_plain(content))}/>')
        return "<attvalues>" + "".join(parts) + "</attvalues>"

    def pieces() -> Iterator[str]:
        deliberation = run.deliberation
        yield (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gexf xmlns="http://www.gexf.net/1.2draft" version="1.2">\n'
            f"<meta><creator>Moral Graph Elicitation</creator><description>"
            f"{_xml_value(deliberation.title)}: scoring run {run.pk}</description></meta>\n"
            '<graph defaultedgetype="directed" mode="static">\n'
        )
        for kind, attrs in (("node", node_attrs), ("edge", edge_attrs)):
            yield f'<attributes class="{kind}">'
            for i, (name, type_, _get) in enumerate(attrs):
                yield f'<attribute id="{i}" title="{name}" type="{type_}"/>'
            yield "</attributes>\n"
        yield "<nodes>\n"
        for value in data.values:
            yield (
                f'<node id="v{value["id"]}" label={quoteattr(_xml_text(value["title"]))}>'
                f"{attvalues(node_attrs, value)}</node>\n"
            )
        yield "</nodes>\n<edges>\n"
        for i, edge in enumerate(data.edges):
            yield (
                f'<edge id="e{i}" source="v{edge["from_value"]}" target="v{edge["to_value"]}" '
                f'weight="{edge_weight(edge)!r}">{attvalues(edge_attrs, edge)}</edge>\n'
            )
        yield "</edges>\n</graph>\n</gexf>\n"

    return _buffered(pieces())


# --- Tables (a zip of CSV files) --------------------------------------------------------------


class _Sink:
    """A write-only, non-seekable file for zipfile: it keeps what was written until drained."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        if chunks:
            yield b"".join(chunks)


Table = tuple[str, list[str], Iterable[Iterable[Any]]]


def tables_zip(
    deliberation: Deliberation, *, run: ScoringRun | None = None, panel_ids: bool = False
) -> Iterator[bytes]:
    """The zip of CSV tables (UTF-8, a header row, comma-separated, RFC 4180 quoting). The
    zip is written as it streams (sizes in data descriptors), one table after the other."""
    sink = _Sink()
    # A sink without tell/seek: zipfile then writes sizes after each member's data.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        for name, header, rows in csv_tables(deliberation, run=run, panel_ids=panel_ids):
            with archive.open(name, "w", force_zip64=True) as member:
                text = io.StringIO()
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(header)
                for i, row in enumerate(rows, start=1):
                    writer.writerow([cell(v) for v in row])
                    if i % CHUNK_ROWS == 0:
                        member.write(text.getvalue().encode())
                        text.seek(0)
                        text.truncate()
                        yield from sink.drain()
                member.write(text.getvalue().encode())
            yield from sink.drain()
    yield from sink.drain()


@dataclasses.dataclass(frozen=True)
class Column:
    """One CSV column: its header, the ``values_list`` lookup it reads, how the value is
    turned into the cell (default: as is), and whether it is free text, withheld when the row
    is hidden."""

    header: str
    lookup: str
    convert: Callable[[Any], Any] | None = None
    text: bool = False


def _is_set(value: Any) -> bool:
    return value is not None


def _db_table(
    name: str,
    queryset,
    columns: list[Column],
    *,
    hidden: tuple[str, Callable[[Any], bool]] | None = None,
) -> Table:
    """A table read from one query in chunks. *hidden* (lookup, test) says which rows are
    hidden: their text columns are withheld."""
    lookups = list(dict.fromkeys([c.lookup for c in columns] + ([hidden[0]] if hidden else [])))
    index = {lookup: i for i, lookup in enumerate(lookups)}

    def rows() -> Iterator[tuple[Any, ...]]:
        for row in queryset.values_list(*lookups).iterator(chunk_size=CHUNK_ROWS):
            withhold = hidden is not None and hidden[1](row[index[hidden[0]]])
            cells = []
            for column in columns:
                value = row[index[column.lookup]]
                if column.text and withhold:
                    value = _withheld(True, value)
                elif column.convert is not None:
                    value = column.convert(value)
                cells.append(value)
            yield tuple(cells)

    return name, [c.header for c in columns], rows()


def csv_tables(
    deliberation: Deliberation, *, run: ScoringRun | None, panel_ids: bool
) -> Iterator[Table]:
    """Each table as (file name, header, rows); rows are lazy."""
    pid = _pseudonymiser(deliberation)

    def person(prefix: str = "participant__") -> list[Column]:
        return [
            Column("participant", f"{prefix}public_id", lambda v: pid(v) if v else None),
            Column("participant_banned", f"{prefix}banned_at", _is_set),
        ]

    demographic_keys = [f["key"] for f in deliberation.demographic_fields if "key" in f]
    panel = [Column(field, field) for field in ("panel_pid", "panel_study_id", "panel_session_id")]
    yield _db_table(
        "participants.csv",
        Participant.objects.filter(deliberation=deliberation).order_by("pk"),
        [
            Column("participant", "public_id", pid),
            *(panel if panel_ids else []),
            Column("is_simulated", "is_simulated"),
            Column("created_at", "created_at"),
            Column("consented_at", "consented_at"),
            Column("completed_at", "completed_at"),
            Column("banned", "banned_at", _is_set),
            Column("banned_at", "banned_at"),
            Column("erased", "erased_at", _is_set),
            *(
                Column(
                    f"demographic_{key}",
                    "demographics",
                    lambda d, k=key: d.get(k) if isinstance(d, dict) else None,
                )
                for key in demographic_keys
            ),
        ],
    )
    yield _db_table(
        "questions.csv",
        Question.objects.filter(deliberation=deliberation).order_by("position", "pk"),
        [Column("question", "slug"), *(Column(f, f) for f in ("text", "position", "is_active"))],
    )
    yield (
        "contexts.csv",
        ["context_id", "text", "questions"],
        ((pk, c["text"], c["questions"]) for pk, c in sorted(_contexts_info(deliberation).items())),
    )
    yield _db_table(
        "values.csv",
        CanonicalValue.objects.filter(deliberation=deliberation)
        .annotate(n_cards=_count_of(ValuesCard, "canonical"))
        .order_by("pk"),
        [
            Column("value_id", "pk"),
            *(Column(f, f, text=True) for f in ("title", "description", "policies")),
            Column("hidden", "hidden_at", _is_set),
            Column("merged_into_id", "merged_into_id"),
            Column("representative_card_id", "representative_id"),
            Column("n_cards", "n_cards"),
            Column("created_at", "created_at"),
        ],
        hidden=("hidden_at", _is_set),
    )
    is_hidden_card = partial(operator.eq, ValuesCard.Approval.HIDDEN)
    yield _db_table(
        "cards.csv",
        ValuesCard.objects.filter(deliberation=deliberation).order_by("pk"),
        [
            Column("card_id", "pk"),
            *person(),
            Column("question", "question__slug"),
            Column("interview_id", "interview_id"),
            *(Column(f, f, text=True) for f in ("title", "description", "policies")),
            Column("canonical_id", "canonical_id"),
            Column("chosen_canonical_id", "chosen_canonical_id"),
            Column("approval", "approval"),
            Column("hidden", "approval", is_hidden_card),
            Column("created_at", "created_at"),
            Column("updated_at", "updated_at"),
        ],
        hidden=("approval", is_hidden_card),
    )
    yield _db_table(
        "judgments.csv",
        UpgradeJudgment.objects.filter(hypothesis__deliberation=deliberation)
        .annotate(n_revisions=_count_of(JudgmentRevision, "judgment"))
        .order_by("pk"),
        [
            Column("judgment_id", "pk"),
            *person(),
            Column("context_id", "context_id"),
            Column("hypothesis_id", "hypothesis_id"),
            Column("from_value_id", "hypothesis__from_value_id"),
            Column("to_value_id", "hypothesis__to_value_id"),
            Column("is_control", "hypothesis__is_control"),
            Column("hypothesis_hidden", "hypothesis__hidden_at", _is_set),
            Column("verdict", "verdict"),
            Column("comment", "comment", text=True),
            Column("comment_hidden", "hidden_at", _is_set),
            Column("n_revisions", "n_revisions"),
            Column("shown_at", "shown_at"),
            Column("answered_at", "answered_at"),
        ],
        hidden=("hidden_at", _is_set),
    )
    # One row per value shown in a wisest-values vote, ``chosen`` saying whether it was picked.
    chosen = WisestVote.chosen.through.objects.filter(
        wisestvote_id=OuterRef("wisestvote_id"), canonicalvalue_id=OuterRef("canonicalvalue_id")
    )
    yield _db_table(
        "votes.csv",
        WisestVote.shown.through.objects.filter(wisestvote__question__deliberation=deliberation)
        .annotate(chosen=Exists(chosen))
        .order_by("wisestvote_id", "canonicalvalue_id"),
        [
            Column("vote_id", "wisestvote_id"),
            *person("wisestvote__participant__"),
            Column("question", "wisestvote__question__slug"),
            Column("value_id", "canonicalvalue_id"),
            Column("chosen", "chosen"),
            Column("shown_at", "wisestvote__shown_at"),
            Column("answered_at", "wisestvote__answered_at"),
        ],
    )
    answers = ("felt_represented", "graph_fair", "clarified_thinking", "trust_process")
    yield _db_table(
        "survey.csv",
        SurveyResponse.objects.filter(participant__deliberation=deliberation).order_by("pk"),
        [
            *person(),
            *(Column(f, f) for f in (*answers, "comment", "created_at")),
        ],
    )
    yield from _run_tables(run)


def _run_tables(run: ScoringRun | None) -> Iterator[Table]:
    """The run's scores and edges; header only when there is no run yet."""
    results = run.results if run is not None else {}
    contexts = results.get("contexts", [])
    extra = [
        key
        for key in ("bt_strength", "bt_se", "bt_winner", "ci_low", "ci_high", "win_rate")
        if any(key in e for c in contexts for e in value_scores(c).values())
    ]
    score_rows = (
        (c["context_id"], value_id, e["score"], e["winner"], *(e.get(k) for k in extra))
        for c in contexts
        for value_id, e in value_scores(c).items()
    )
    yield ("scores.csv", ["context_id", "value_id", "score", "winner", *extra], score_rows)
    yield (
        "context_results.csv",
        [
            "context_id",
            "support",
            "z_score",
            "ratio",
            "n_edges",
            "estimators_agree",
            "bt_margin_z",
        ],
        (
            (
                c["context_id"],
                c.get("support"),
                c.get("z_score"),
                c.get("ratio"),
                c.get("n_edges"),
                c.get("estimators_agree"),
                (c.get("bradley_terry") or {}).get("margin_z"),
            )
            for c in contexts
        ),
    )
    names = edge_columns(results) or list(EDGE_COLUMNS)
    yield ("edges.csv", names, (e.values() for e in edge_rows(results)))


def _pseudonymiser(deliberation: Deliberation) -> Callable[[Any], str]:
    base = _pseudonym_hmac()
    return lambda public_id: pseudonym(deliberation.pk, public_id, base=base)


def _count_of(model, field: str):
    """A correlated COUNT subquery: cheaper than a GROUP BY over every exported column."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0)


# --- Transcripts (JSON Lines) ---------------------------------------------------------------


def transcripts_jsonl(deliberation: Deliberation) -> Iterator[bytes]:
    """One interview per line, its messages in order. Hidden messages keep their place,
    marked, with their content withheld. Two queries streamed side by side (interviews by id,
    messages by interview and position), so only one interview is held in memory at a time."""
    pid = _pseudonymiser(deliberation)
    interviews = (
        Interview.objects.filter(participant__deliberation=deliberation)
        .order_by("pk")
        .values_list(
            "pk",
            "participant__public_id",
            "participant__banned_at",
            "question__slug",
            "status",
            "interviewer",
            "model",
            "prompt_version",
            "started_at",
            "completed_at",
            "card__id",
        )
        .iterator(chunk_size=CHUNK_ROWS)
    )
    messages = (
        Message.objects.filter(interview__participant__deliberation=deliberation)
        .order_by("interview_id", "seq")
        .values_list(
            "interview_id",
            "seq",
            "role",
            "content",
            "tool_call",
            "status",
            "hidden_at",
            "created_at",
        )
        .iterator(chunk_size=CHUNK_ROWS)
    )

    def pieces() -> Iterator[str]:
        pending = next(messages, None)
        for (
            pk,
            public_id,
            banned,
            question,
            status,
            interviewer,
            model,
            prompt,
            *rest,
        ) in interviews:
            started, completed, card = rest
            turns = []
            while pending is not None and pending[0] == pk:
                _interview, seq, role, content, tool_call, m_status, hidden_at, created = pending
                hidden = hidden_at is not None
                turns.append(
                    {
                        "seq": seq,
                        "role": role,
                        "content": _withheld(hidden, content),
                        "proposed_card": None if hidden else tool_call,
                        "status": m_status,
                        "hidden": hidden,
                        "created_at": _iso(created),
                    }
                )
                pending = next(messages, None)
            line = {
                "interview_id": pk,
                "participant": pid(public_id),
                "participant_banned": banned is not None,
                "question": question,
                "status": status,
                "interviewer": interviewer,
                "model": model,
                "prompt_version": prompt,
                "started_at": _iso(started),
                "completed_at": _iso(completed),
                "card_id": card,
                "messages": turns,
            }
            yield dumps(line) + "\n"

    return _buffered(pieces())


# --- The formats ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Format:
    filename: str
    content_type: str
    needs_run: bool
    description: Any  # a lazy translation


FORMATS: dict[str, Format] = {
    f.filename: f
    for f in (
        Format(
            "graph.json",
            "application/json",
            True,
            _("The moral graph of a scoring run: values, scores, edges and parameters."),
        ),
        Format(
            "graph.graphml",
            "application/graphml+xml",
            True,
            _("The same graph as GraphML (Cytoscape, networkx, igraph, Gephi)."),
        ),
        Format(
            "graph.gexf",
            "application/gexf+xml",
            True,
            _("The same graph as GEXF (Gephi)."),
        ),
        Format(
            "tables.zip",
            "application/zip",
            False,
            _(
                "CSV tables: participants, questions, contexts, values, cards, judgments, "
                "votes, survey answers, and the run's scores and edges."
            ),
        ),
        Format(
            "transcripts.jsonl",
            "application/x-ndjson",
            False,
            _("The interview transcripts, one interview per line."),
        ),
        Format(
            "target.json",
            "application/json",
            True,
            _("The alignment target: the winning values per context, with provenance."),
        ),
        Format(
            "target.md",
            "text/markdown; charset=utf-8",
            True,
            _("The alignment target as Markdown, for a system prompt or training data."),
        ),
    )
}


def export(
    filename: str,
    *,
    deliberation: Deliberation,
    run: ScoringRun | None,
    panel_ids: bool = False,
) -> Iterator[bytes]:
    """The chunks of one export. *run* is required by the formats that need one."""
    from graph import target  # the target reads the helpers above

    if filename == "tables.zip":
        return tables_zip(deliberation, run=run, panel_ids=panel_ids)
    if filename == "transcripts.jsonl":
        return transcripts_jsonl(deliberation)
    if run is None:
        raise NoScoringRun("")
    if filename == "graph.json":
        return graph_json(run)
    if filename == "graph.graphml":
        return graph_graphml(run)
    if filename == "graph.gexf":
        return graph_gexf(run)
    if filename == "target.json":
        return iter([(dumps(target.alignment_target(run)) + "\n").encode()])
    if filename == "target.md":
        return iter([target.target_markdown(target.alignment_target(run)).encode()])
    raise KeyError(filename)
