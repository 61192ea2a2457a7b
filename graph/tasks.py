"""Background tasks of the graph side. Each takes ids, calls one service, is safe to run twice,
and retries only what may succeed later (pipeline.is_transient: the model timed out, was rate
limited, unavailable or broke off; the network failed), with exponential backoff and jitter, at
most MAX_RETRIES times. Meanwhile the job row says "failed" with the reason, so a researcher sees
what is going on; a retry (or an admin's re-run) resumes the same row."""

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from elicit.models import Deliberation
from graph import pilots, pipeline, privacy, services
from graph.models import PilotRun, PipelineJob

MAX_RETRIES = 5
BACKOFF_SECONDS = 60  # first retry after up to a minute, then 2, 4, 8, 16 (jittered)
BACKOFF_MAX_SECONDS = 1800
# Writing stories costs one model call per pair, a few seconds each: far more than the default
# task limit of five minutes. Work is saved pair by pair, so a task stopped by this limit loses
# nothing, and its job says where it stopped.
PIPELINE_SOFT_TIME_LIMIT = 3600


@shared_task(name="graph.deduplicate_card", bind=True)
def deduplicate_card(self, card_id: int) -> int | None:
    try:
        decision = services.deduplicate(card_id=card_id)
    except Exception as error:  # the judge's failures; nothing was decided
        _retry_transient(self, error)
        raise
    return decision.pk if decision else None


def _retry_transient(task, error: Exception) -> None:
    """Retry the task later if *error* is transient and retries are left; otherwise return."""
    if not pipeline.is_transient(error) or task.request.retries >= MAX_RETRIES:
        return
    countdown = get_exponential_backoff_interval(
        factor=BACKOFF_SECONDS,
        retries=task.request.retries,
        maximum=BACKOFF_MAX_SECONDS,
        full_jitter=True,
    )
    raise task.retry(exc=error, countdown=countdown, max_retries=MAX_RETRIES)


@shared_task(
    name="graph.deduplicate_pending",
    bind=True,
    soft_time_limit=PIPELINE_SOFT_TIME_LIMIT,
    time_limit=PIPELINE_SOFT_TIME_LIMIT + 60,
)
def deduplicate_pending_task(self, deliberation_id: int, job_id: int | None = None) -> int | None:
    try:
        job = pipeline.deduplicate_pending(deliberation_id=deliberation_id, job_id=job_id)
    except Deliberation.DoesNotExist:
        return None
    if job.status == PipelineJob.Status.FAILED and job.params.get("transient"):
        _retry_transient(self, ConnectionError(job.error))
    return job.pk


@shared_task(
    name="graph.generate_hypotheses",
    bind=True,
    soft_time_limit=PIPELINE_SOFT_TIME_LIMIT,
    time_limit=PIPELINE_SOFT_TIME_LIMIT + 60,
)
def generate_hypotheses_task(self, deliberation_id: int, job_id: int | None = None) -> int | None:
    try:
        job = pipeline.generate_hypotheses(deliberation_id=deliberation_id, job_id=job_id)
    except Deliberation.DoesNotExist:
        return None
    except Exception as error:  # the job row already says what failed
        _retry_transient(self, error)
        raise
    return job.pk


@shared_task(name="graph.check_vote_quality", bind=True)
def check_vote_quality_task(self, deliberation_id: int, job_id: int | None = None) -> int | None:
    try:
        job = pipeline.check_vote_quality(deliberation_id=deliberation_id, job_id=job_id)
    except Deliberation.DoesNotExist:
        return None
    except Exception as error:  # e.g. the database connection dropped
        _retry_transient(self, error)
        raise
    return job.pk


@shared_task(name="graph.score", bind=True)
def score_task(
    self,
    deliberation_id: int,
    job_id: int | None = None,
    estimator: str = "pagerank",
    include_flagged: bool = False,
    name: str = "",
    params: dict | None = None,
) -> int | None:
    try:
        run = pipeline.run_scoring(
            deliberation_id=deliberation_id,
            job_id=job_id,
            estimator=estimator,
            include_flagged=include_flagged,
            name=name,
            params=params,
        )
    except Deliberation.DoesNotExist:
        return None
    except Exception as error:  # e.g. the database connection dropped
        _retry_transient(self, error)
        raise
    return run.pk


@shared_task(
    name="graph.run_pipeline",
    bind=True,
    soft_time_limit=PIPELINE_SOFT_TIME_LIMIT,
    time_limit=PIPELINE_SOFT_TIME_LIMIT + 60,
)
def run_pipeline_task(self, deliberation_id: int, job_id: int | None = None) -> int | None:
    """The whole pipeline. A step that failed transiently is retried by re-running the same
    pipeline job later, which skips the steps already done."""
    try:
        job = pipeline.run_pipeline(deliberation_id=deliberation_id, job_id=job_id)
    except Deliberation.DoesNotExist:
        return None
    if (
        job.status == PipelineJob.Status.FAILED
        and job.params.get("transient")
        and self.request.retries < MAX_RETRIES
    ):
        # Retry in the same pipeline job (a call without its id would start a new one); it
        # shows as queued meanwhile, so the schedule does not queue another pipeline.
        PipelineJob.objects.filter(pk=job.pk, status=PipelineJob.Status.FAILED).update(
            status=PipelineJob.Status.QUEUED
        )
        countdown = get_exponential_backoff_interval(
            factor=BACKOFF_SECONDS,
            retries=self.request.retries,
            maximum=BACKOFF_MAX_SECONDS,
            full_jitter=True,
        )
        raise self.retry(
            args=[deliberation_id, job.pk], countdown=countdown, max_retries=MAX_RETRIES
        )
    return job.pk


@shared_task(
    name="graph.run_pilot",
    soft_time_limit=PIPELINE_SOFT_TIME_LIMIT,
    time_limit=PIPELINE_SOFT_TIME_LIMIT + 60,
)
def run_pilot_task(pilot_run_id: int) -> int | None:
    """A pilot with simulated participants (graph/pilots.py); a finished one is left as is."""
    try:
        return pilots.run_pilot(pilot_run_id=pilot_run_id).pk
    except PilotRun.DoesNotExist:
        return None


@shared_task(name="graph.run_scheduled_pipeline")
def run_scheduled_pipeline() -> list[int]:
    """Celery beat: queue the pipeline of every open deliberation (unless one is in flight)."""
    queued = []
    for deliberation_id in pipeline.open_deliberation_ids():
        job = pipeline.queue_pipeline(deliberation_id=deliberation_id, reason="schedule")
        if job is not None:
            queued.append(job.pk)
    return queued


def maybe_run_pipeline(deliberation_id: int) -> int | None:
    """Queue the pipeline if enough new cards or judgments arrived since it last ran (see
    `pipeline.pipeline_due`). Cheap (a lookup, then two counts); call it after the transaction
    that added a card or a judgment commits. Returns the queued pipeline job's id, if any."""
    job = pipeline.queue_pipeline_if_due(deliberation_id=deliberation_id)
    return job.pk if job else None


@shared_task(name="graph.apply_retention")
def apply_retention() -> int:
    """Celery beat, hourly: erase participants past their deliberation's retention period.
    Safe to run twice: erased participants are skipped."""
    return privacy.apply_retention()
