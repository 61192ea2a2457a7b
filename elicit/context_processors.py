from django.conf import settings


def site(request):
    """What every page needs to know about the installation."""
    return {"llm_enabled": settings.LLM_ENABLED}
