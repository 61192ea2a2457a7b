"""The Celery application.

Tasks are discovered in each app's tasks.py. The broker is Redis when REDIS_URL is set and a
folder of message files otherwise (see CELERY_BROKER_URL in config/settings.py), so the embedded
default runs a real worker beside the web server without any broker server.
"""

import importlib
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


# Loaded by the first task sent, beside what the objects made in warm_up load.
SENDING_MODULES = (
    "celery.app.amqp",
    "celery.app.events",
    "celery.canvas",
    "celery.events.dispatcher",
    "celery.result",
    "encodings.idna",  # connecting by host name
    "kombu.mixins",
    "kombu.utils.limits",
)


def warm_up() -> None:
    """Load now what sending the first task would load: the tasks, the result backend, the
    broker's transport (its client library too), the events a send emits. A web server does it
    at start (config/asgi.py): at the first message of a process it stopped the event loop, and
    every stream of that server, for about 90 ms (bench/interviews.py). Nothing is connected."""
    for module in SENDING_MODULES:
        importlib.import_module(module)
    app.loader.import_default_modules()
    app.finalize(auto=True)
    app.backend  # noqa: B018 - creating it imports its module
    connection = app.connection_for_write()
    try:
        connection.transport  # noqa: B018 - the same for the broker's transport
    finally:
        connection.release()
