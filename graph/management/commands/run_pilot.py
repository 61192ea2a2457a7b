"""Run a pilot of a deliberation with simulated participants, here and now (no worker).

    .venv/bin/python manage.py run_pilot demo --participants 50,200,1000 --repeats 20 \\
        --noise 1 --unsure 0.1 --faction 0.1 --seed 1

Prints the power analysis as a table, then the whole report as JSON on the last line.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from elicit.models import Deliberation
from graph import pilots
from graph.models import PilotRun


class Command(BaseCommand):
    help = "Run a deliberation's pipeline on simulated participants and print the power analysis."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the deliberation to pilot")
        parser.add_argument("--participants", default="50,200,1000")
        parser.add_argument("--repeats", type=int, default=10)
        parser.add_argument("--values", type=int, default=20)
        parser.add_argument("--contexts", type=int, default=2)
        parser.add_argument("--judgments", type=int, default=5, help="per participant")
        parser.add_argument("--noise", type=float, default=1.0)
        parser.add_argument("--unsure", type=float, default=0.0, help="share of 'not sure'")
        parser.add_argument("--faction", type=float, default=0.0, help="share of participants")
        parser.add_argument("--planted", default="", help="value numbers, wisest first")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options):
        deliberation = Deliberation.objects.filter(
            slug=options["slug"], pilot_of__isnull=True
        ).first()
        if deliberation is None:
            raise CommandError(f"no deliberation {options['slug']!r}")
        try:
            request = pilots.build_request(
                participants=options["participants"],
                planted=options["planted"],
                repeats=options["repeats"],
                seed=options["seed"],
                n_values=options["values"],
                n_contexts=options["contexts"],
                judgments_per_participant=options["judgments"],
                noise=options["noise"],
                unsure_share=options["unsure"],
                faction_share=options["faction"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        run = PilotRun.objects.create(deliberation=deliberation, simulation=request.to_dict())
        run = pilots.run_pilot(pilot_run_id=run.pk)
        if run.status != PilotRun.Status.DONE:
            raise CommandError(f"the pilot failed: {run.error}")
        for row in pilots.recovery_rows(run.report):
            figures = "  ".join(
                f"{e['name']}: tau {e['tau_mean']:.3f}, winner found {e['winner_found']:.0%}"
                for e in row["estimators"]
            )
            self.stdout.write(f"{row['participants']:>6} participants  {figures}")
            if row["faction"]:
                faction = row["faction"]
                self.stdout.write(
                    f"        faction flagged {faction['faction_flagged']:.0%}, honest flagged "
                    f"{faction['honest_flagged']:.1%}, its value wins (BT) "
                    f"{faction['wins_included']['bradley_terry']:.0%} with flagged data, "
                    f"{faction['wins_excluded']['bradley_terry']:.0%} without"
                )
        self.stdout.write(f"Pilot deliberation: {run.report['pilot']['slug']}")
        self.stdout.write(json.dumps(run.report, sort_keys=True))
