"""Background tasks of the participant side."""

from celery import shared_task


@shared_task(name="elicit.ping")
def ping() -> str:
    """Answers "pong": lets operators and tests check that a worker consumes the queue."""
    return "pong"
