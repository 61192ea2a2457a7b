"""The Celery application.

Tasks are discovered in each app's tasks.py. The broker is Redis when REDIS_URL is set and a
folder of message files otherwise (see CELERY_BROKER_URL in config/settings.py), so the embedded
default runs a real worker beside the web server without any broker server.
"""

import logging
import os
from pathlib import Path

from celery import Celery
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)

# What sending a task raises when the broker cannot be reached.
BROKER_ERRORS = (KombuError, OSError)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("moralgraph")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue(task, what: str, *args, **options):
    """Send *task* with *args* to the workers (`options` as for apply_async); the task's result
    handle, or None when the broker could not be reached. Sending runs after the user's input is
    saved: an unreachable broker must not turn that into an error page or a closed socket, so
    it is a warning naming *what* went unqueued, and the caller decides what else follows."""
    try:
        return task.apply_async(args=args, **options)
    except BROKER_ERRORS as error:
        logger.warning("could not queue %s: %s", what, error)
        return None


def ensure_broker_folders() -> None:
    """kombu's filesystem transport expects its folders to exist before anything is sent."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


if str(app.conf.broker_url).startswith("filesystem://"):
    ensure_broker_folders()
