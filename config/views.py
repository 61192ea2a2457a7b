import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config import health


@require_safe
@never_cache
def healthz(request):
    """200 when the database, the broker and the channel layer are all usable, else 503."""
    problems = health.run_checks()
    body = {
        "status": "ok" if not any(problems.values()) else "unavailable",
        "checks": {
            name: {"ok": problem is None, **({"error": problem} if problem else {})}
            for name, problem in problems.items()
        },
    }
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


RETRY_AFTER_SECONDS = 5


def server_error(request):
    """The 500 handler. A database that cannot be reached for a moment (a restart, a failover,
    a network blip) is not a bug: it answers 503 with Retry-After and a "try again in a few
    seconds" page; the next request after the database is back works, nothing to restart."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponseServerError(render_to_string("500.html"))
