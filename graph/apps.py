from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# A participant has this long to say "that is my value" before deduplication decides alone.
DEDUP_DELAY_SECONDS = 120


class GraphConfig(AppConfig):
    name = "graph"
    verbose_name = _("Moral graph")

    def ready(self) -> None:
        from elicit.services import card_confirmed

        card_confirmed.connect(on_card_confirmed, dispatch_uid="graph.on_card_confirmed")
        card_confirmed.connect(on_card_pending, dispatch_uid="graph.moderation.on_card_pending")


def on_card_confirmed(sender, card, **kwargs) -> None:
    """Sent once the card's transaction committed: deduplicate it a little later (the
    participant may still say which value is theirs), and run the pipeline if enough new
    cards arrived."""
    from graph.pipeline import queue_pipeline_if_due
    from graph.services import queue_deduplication

    queue_deduplication(card.pk, countdown=DEDUP_DELAY_SECONDS)
    queue_pipeline_if_due(deliberation_id=card.deliberation_id)


def on_card_pending(sender, card, **kwargs) -> None:
    """In strict moderation mode a new card waits in the moderation queue for approval."""
    from graph.moderation.services import flag_for_approval

    flag_for_approval(card)
