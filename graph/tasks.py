"""Background tasks of the graph side. Each takes ids, calls one service, is safe to run twice,
and retries transient errors with backoff and a cap."""

from celery import shared_task

from elicit.llm import LLMError
from graph import services

TRANSIENT = (LLMError, ConnectionError, TimeoutError)


@shared_task(
    name="graph.deduplicate_card",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def deduplicate_card(card_id: int) -> int | None:
    decision = services.deduplicate(card_id=card_id)
    return decision.pk if decision else None
