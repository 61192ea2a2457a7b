"""Settings come only from the environment, and a bad value stops the start with its name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**environ: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with exactly these variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env.update(environ)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.LLM_ENABLED, "
        "settings.LLM_BASE_URL, settings.CELERY_BROKER_URL, "
        "settings.CHANNEL_LAYERS['default']['BACKEND'], sep='|')"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_defaults_need_no_server():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    engine, llm_enabled, _, broker, layer = result.stdout.strip().split("|")
    assert engine == "django.db.backends.sqlite3"
    assert llm_enabled == "False"
    assert broker == "filesystem://"
    assert layer == "channels.layers.InMemoryChannelLayer"


def test_it_refuses_the_development_secret_key_when_debug_is_off():
    result = load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_starts_with_debug_off_and_a_real_secret_key():
    result = load_settings(DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "perhaps"),
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://localhost:6379"),
        ("LLM_BASE_URL", "ftp://models.example"),
        ("LLM_TIMEOUT", "soon"),
        ("EMBEDDING_BACKEND", "magic"),
        ("MESSAGE_MAX_CHARS", "10"),
        ("CSRF_TRUSTED_ORIGINS", "example.org"),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_variable(name, value):
    result = load_settings(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_redis_url_switches_the_channel_layer_and_the_broker():
    result = load_settings(REDIS_URL="redis://127.0.0.1:6379/3")
    assert result.returncode == 0, result.stderr
    *_, broker, layer = result.stdout.strip().split("|")
    assert broker == "redis://127.0.0.1:6379/3"
    assert layer == "channels_redis.pubsub.RedisPubSubChannelLayer"


def test_the_standard_openai_variables_are_honoured():
    result = load_settings(OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY="k")
    assert result.returncode == 0, result.stderr
    _, llm_enabled, base_url, *_ = result.stdout.strip().split("|")
    assert (llm_enabled, base_url) == ("True", "http://127.0.0.1:9/v1")


def test_llm_variables_win_over_the_openai_ones():
    env = Env({"LLM_API_KEY": "ours", "OPENAI_API_KEY": "theirs"})
    assert env.first("LLM_API_KEY", "OPENAI_API_KEY") == "ours"


def test_env_reader_names_the_variable_in_its_errors():
    env = Env({"WORKERS": "two", "RATIO": "x", "FLAG": "maybe"})
    with pytest.raises(ImproperlyConfigured, match="WORKERS"):
        env.int("WORKERS", 1)
    with pytest.raises(ImproperlyConfigured, match="RATIO"):
        env.float("RATIO", 0.5)
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env.bool("FLAG", False)


def test_every_variable_the_settings_read_is_documented_in_env_example():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    example = (ROOT / "deploy" / ".env.example").read_text()
    import re

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'env\.(?:first|url)\(\s*"[A-Z_]+",\s*"([A-Z_]+)"', settings_source))
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", example, flags=re.MULTILINE))
    assert read, "the pattern found no variables: the test would prove nothing"
    assert read - documented == set()
