from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ElicitConfig(AppConfig):
    name = "elicit"
    verbose_name = _("Elicitation")

    def ready(self) -> None:
        from elicit import login  # noqa: F401  (connects the login throttling's signals)
