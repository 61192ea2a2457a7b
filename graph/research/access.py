"""Fetch a deliberation for a research page, with permission (see `elicit.access`)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import get_object_or_404

from elicit import access
from elicit.models import Deliberation


def research_deliberation(request, slug: str) -> Deliberation:
    """The deliberation, if the request's user may see its research pages; 404 otherwise."""
    deliberation = get_object_or_404(Deliberation, slug=slug)
    if not access.can_research(request.user, deliberation):
        raise Http404
    return deliberation


def researcher_required(view):
    """Anonymous users go to the login page; logged-in users who are not researchers get 404."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if (
            not access.is_researcher(request.user)
            and not access.research_deliberations(request.user).exists()
        ):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper
