"""ASGI entry point: Django for HTTP, Channels consumers for websockets."""

import gc
import os
import sys

import django

# Database work runs in a worker thread beside the event loop. With Python's default 5 ms GIL
# switch interval, each hand-over between them can wait that long while the loop is busy
# relaying streams; 1 ms keeps a participant's first token quick under load. Measured against
# others (README, benchmark table, 2026-12-07): 0.2 ms made the event loop lose the GIL so often
# that first tokens waited seconds; 5 ms gave the load benchmark p50s more than twice as long
# (one run each: the HTTP threads wait longer for the GIL); 5 and 20 ms did no better than
# 1 ms for the interviews.
sys.setswitchinterval(0.001)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the consumers (and the models they import) are loaded.
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402

from config.handlers import HTTPHandler  # noqa: E402
from elicit.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": HTTPHandler(),
        # Origin checked against ALLOWED_HOSTS; the session identifies the participant (the
        # interview's websocket has no use for a staff user, so none is looked up).
        "websocket": AllowedHostsOriginValidator(
            SessionMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)


def _settle_memory() -> None:
    """Hide everything alive once the app is loaded from the garbage collector.

    A full collection walks every tracked object: with Django, the apps and the `openai` SDK
    loaded that is about 200,000 objects and 100-300 ms during which the event loop (and every
    stream it relays) stands still; at hundreds of concurrent interviews it happened every 20 s
    or so and made the slowest first tokens. These objects live as long as the process, so
    `gc.freeze()` moves them to a generation the collector never scans. What the SDK and the
    interview page load lazily on first use is loaded first, so that it is frozen too."""
    from django.template.loader import get_template

    from config.celery import warm_up as warm_up_tasks
    from elicit import llm

    llm.warm_up()
    warm_up_tasks()
    get_template("elicit/interview.html")
    gc.collect()
    gc.freeze()
    # Full collections still walk everything alive since: at 500 live interviews they came 12
    # times in a benchmark's three minutes, up to 114 ms each, with every stream stopped. After
    # 100 younger collections instead of 10, they are rare (one in the same run): first token
    # added p99 42.7-65.0 ms against 63.0-76.7 ms in three runs each (bench/interviews.py
    # --pin), for about 16 MiB more memory.
    gc.set_threshold(700, 10, 100)


_settle_memory()
