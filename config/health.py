"""Health checks of what the application depends on: the database, the Celery broker and the
channel layer. Each check returns None when usable, or a short message saying what is wrong."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from config.celery import app as celery_app

TIMEOUT = 2.0


def check_database() -> str | None:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any driver error means "not usable"
        return f"{type(error).__name__}: {error}".strip()[:300]
    return None


def check_broker() -> str | None:
    url = str(celery_app.conf.broker_url)
    if url.startswith("filesystem://"):
        options = celery_app.conf.broker_transport_options or {}
        folder = Path(options.get("data_folder_in", ""))
        if not folder.is_dir():
            return f"broker folder {folder} does not exist"
        probe = folder / f".health-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            return f"broker folder {folder} is not writable: {error}"
        return None
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT)
    except Exception as error:  # kombu raises many connection error types
        return f"{type(error).__name__}: {error}".strip()[:300]
    return None


def check_channel_layer() -> str | None:
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer configured"
    try:
        async_to_sync(_round_trip)(layer)
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()[:300]
    return None


async def _round_trip(layer) -> None:
    """Send a message to a fresh channel and read it back."""
    channel = await layer.new_channel()
    await asyncio.wait_for(layer.send(channel, {"type": "health.ping"}), TIMEOUT)
    message = await asyncio.wait_for(layer.receive(channel), TIMEOUT)
    if message.get("type") != "health.ping":
        raise RuntimeError("the channel layer returned a different message")


def run_checks() -> dict[str, str | None]:
    return {
        "database": check_database(),
        "broker": check_broker(),
        "channel_layer": check_channel_layer(),
    }
