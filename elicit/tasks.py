"""Background tasks of the participant side."""

from celery import shared_task


@shared_task(name="elicit.ping", ignore_result=False)
def ping() -> str:
    """Answers "pong": lets operators and tests check that a worker consumes the queue."""
    return "pong"


@shared_task(
    name="elicit.moderate_text",
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def moderate_text(app_label: str, model_name: str, object_id: int) -> bool:
    """Run the moderation check on a participant's message or card and flag it for the queue.
    Safe to run twice: a flag is recorded once per item and reason."""
    from asgiref.sync import async_to_sync
    from django.apps import apps

    from elicit import moderation, services

    model = apps.get_model(app_label, model_name)
    target = model.objects.filter(pk=object_id).first()
    if target is None:
        return False
    verdict = async_to_sync(moderation.check)(services.moderation_text(target))
    if verdict is None or not verdict.flagged:
        return False
    for reason in verdict.reasons or ("flagged",):
        services.flag(
            target=target,
            deliberation_id=services.deliberation_id_of(target),
            source="automatic",
            reason=reason,
            detail=f"{verdict.source} check",
        )
    return True
