from django.core.management.base import BaseCommand

from elicit.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo deliberation (slug 'demo') with the three questions of the 2024 trial."

    def handle(self, *args, **options):
        deliberation, created = seed_demo()
        verb = "Created" if created else "Already present:"
        self.stdout.write(f"{verb} demo deliberation /d/{deliberation.slug}/")
