"""Typed readers for environment variables.

Configuration comes only from the environment (see deploy/.env.example). Every reader raises
ImproperlyConfigured with the variable's name when a value cannot be parsed, so a typo stops the
process at start instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def str(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default).strip()

    def first(self, *names: str, default: str = "") -> str:
        """The first of several variables that is set (e.g. LLM_API_KEY, then OPENAI_API_KEY)."""
        for name in names:
            value = self.str(name)
            if value:
                return value
        return default

    def bool(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            return default  # an empty line copied from .env.example means "the default"
        value = raw.strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a boolean; use one of: true, false, 1, 0, yes, no."
        )

    def int(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
        return value

    def float(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ImproperlyConfigured(f"{name}={raw!r} must be between {minimum} and {maximum}.")
        return value

    def list(self, name: str, default: str = "") -> list[str]:
        return [item.strip() for item in self.str(name, default).split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: set[str]) -> str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not one of: {', '.join(sorted(choices))}."
            )
        return value

    def url(self, *names: str, schemes: set[str], default: str = "") -> str:
        """The first of `names` that is set, checked to be a URL with one of `schemes`."""
        value = self.first(*names, default=default)
        if not value:
            return ""
        parsed = urlparse(value)
        if parsed.scheme not in schemes:
            name = next((n for n in names if self.str(n)), names[0])
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a URL with one of the schemes: "
                f"{', '.join(sorted(schemes))}."
            )
        return value
