from django.http import JsonResponse
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
