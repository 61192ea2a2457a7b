"""python manage.py export <slug> --format graph.json --output PATH [--run NAME_OR_ID]

Writes the same bytes as the download at /research/d/<slug>/export/<format>, streamed to the
file (or to standard output with ``--output -``). Panel ids are included only with
``--panel-ids`` (whoever runs manage.py already holds the database)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from elicit.models import Deliberation
from graph import exports


class Command(BaseCommand):
    help = "Export a deliberation's graph, tables, transcripts or alignment target."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the deliberation's slug")
        parser.add_argument("--format", required=True, choices=sorted(exports.FORMATS))
        parser.add_argument("--output", required=True, help="file to write, or - for stdout")
        parser.add_argument("--run", default=None, help="a scoring run's name or id")
        parser.add_argument(
            "--panel-ids", action="store_true", help="include panel ids in participants.csv"
        )

    def handle(self, *args, slug, format, output, run, panel_ids, **options):
        deliberation = Deliberation.objects.filter(slug=slug).first()
        if deliberation is None:
            raise CommandError(f"No deliberation with the slug {slug!r}.")
        try:
            chosen = exports.resolve_run(deliberation, run)
        except exports.NoScoringRun:
            if run or exports.FORMATS[format].needs_run:
                raise CommandError(
                    f"No finished scoring run {run!r}."
                    if run
                    else f"{slug!r} has no finished scoring run yet: score the graph first."
                ) from None
            chosen = None
        chunks = exports.export(format, deliberation=deliberation, run=chosen, panel_ids=panel_ids)
        size = 0
        if output == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
                size += len(chunk)
            sys.stdout.buffer.flush()
            return
        with open(output, "wb") as target:
            for chunk in chunks:
                target.write(chunk)
                size += len(chunk)
        self.stderr.write(f"Wrote {format} of {slug} ({size} bytes) to {output}.")
