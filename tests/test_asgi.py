"""The ASGI entry point, as a server process loads it."""

import asyncio
import json
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

ROOT = Path(__file__).resolve().parent.parent


def in_a_server_process(script: str, var_dir: Path):
    """Run `script` in a new Python process on the embedded defaults, as a server would start;
    the JSON it prints last, parsed."""
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_what_the_server_loads_at_start_is_hidden_from_the_garbage_collector(tmp_path):
    # A full collection walks every tracked object and stops the event loop meanwhile: the
    # objects loaded at start (Django, the apps, the SDK, the interview page) are frozen.
    script = (
        "import gc, json, config.asgi, openai.resources.chat.completions;"
        "print(json.dumps([gc.get_freeze_count(), len(gc.get_objects())]))"
    )
    frozen, tracked = in_a_server_process(script, tmp_path)
    assert frozen > 50_000
    assert tracked < frozen / 20


def test_the_first_message_of_a_server_loads_no_module_for_its_moderation_check(tmp_path):
    # Loading modules holds the event loop, and every stream of the server, still: what
    # sending a task and connecting to the model load is loaded at start (config/asgi.py).
    script = (
        "import sys, json, config.asgi;"
        "loaded = set(sys.modules);"
        "from config.celery import enqueue;"
        "from elicit.tasks import moderate_text;"
        "assert enqueue(moderate_text, 'a check', 'elicit', 'message', 1) is not None;"
        "later = sorted(set(sys.modules) - loaded);"
        "print(json.dumps([later, 'anyio._backends._asyncio' in loaded]))"
    )
    loaded_later, connecting_loaded = in_a_server_process(script, tmp_path)
    assert loaded_later == []
    assert connecting_loaded


@pytest.mark.django_db(transaction=True)
async def test_pages_asked_for_at_once_all_arrive_no_more_than_the_limit_in_progress(
    settings, monkeypatch
):
    """Twelve people open the landing page in the same instant on a server that handles three
    requests at once: all twelve get the page; the others waited their turn. And each request's
    middleware and view ran in one thread (one hand-over from the event loop, not two per
    middleware: under load those hand-overs queued behind the streams and kept database
    connections out of the pool), one of three threads that stay for the next requests."""
    from channels.testing import HttpCommunicator
    from django.middleware.clickjacking import XFrameOptionsMiddleware
    from django.middleware.common import CommonMiddleware

    from config.asgi import application
    from elicit.demo import seed_demo

    settings.HTTP_CONCURRENCY = 3
    await sync_to_async(seed_demo)()
    running = 0
    most = 0
    # Keyed by the request itself, which keeps it alive: an id() can be reused once a finished
    # request is freed, and two requests then counted as one.
    threads: dict[object, set[int]] = {}
    handed_over: list[bool] = []  # a middleware called from the event loop, not by the next one
    lock = threading.Lock()
    process_request = CommonMiddleware.process_request
    process_response = XFrameOptionsMiddleware.process_response

    def entering(self, request):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threads[request] = {threading.get_ident()}
        handed_over.append(any(f.name == "__acall__" for f in traceback.extract_stack()))
        time.sleep(0.05)  # a page that takes a moment to build
        return process_request(self, request)

    def leaving(self, request, response):
        nonlocal running
        threads[request].add(threading.get_ident())
        handed_over.append(any(f.name == "__acall__" for f in traceback.extract_stack()))
        with lock:
            running -= 1
        return process_response(self, request, response)

    monkeypatch.setattr(CommonMiddleware, "process_request", entering)
    monkeypatch.setattr(XFrameOptionsMiddleware, "process_response", leaving)
    pages = [
        HttpCommunicator(application, "GET", "/d/demo/", headers=[(b"host", b"localhost")])
        for _ in range(12)
    ]
    responses = await asyncio.gather(*(page.get_response(timeout=20) for page in pages))
    assert [response["status"] for response in responses] == [200] * 12
    assert all(b"demo" in response["body"] for response in responses)
    assert most == 3
    assert len(threads) == 12 and all(len(used) == 1 for used in threads.values())
    assert len(set().union(*threads.values())) == 3
    assert len(handed_over) == 24 and not any(handed_over)


@pytest.mark.django_db(transaction=True)
async def test_what_serving_a_page_hangs_on_its_request_is_freed_when_the_response_is_sent():
    """The request's session, messages, lazy user and response, and the handler's own tasks,
    are freed by reference counting once the response is out. Left in reference cycles, they
    wait for a full collection, which stops every stream of the process: after 500
    participants joined at once, one such collection freed 81,000 objects in 280 ms
    (bench/interviews.py). Nor does each request get a new thread, whose new database
    wrapper is another cycle. (Django leaves other, smaller cycles: its forms.)"""
    import collections
    import gc

    from config.asgi import application
    from elicit.demo import seed_demo

    await sync_to_async(seed_demo)()

    async def serve_page() -> int:
        """One GET of a deliberation's page, with a server that says the client is gone once
        the response is sent, as uvicorn does."""
        sent = asyncio.Event()
        status = []
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive():
            message = next(messages, None)
            if message is not None:
                return message
            await sent.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif not message.get("more_body"):
                sent.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/d/demo/",
            "raw_path": b"/d/demo/",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        await application(scope, receive, send)
        return status[0]

    assert await serve_page() == 200  # what the first page loads and keeps is not counted
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection would free is kept, to be looked at
    try:
        statuses = [await serve_page() for _ in range(10)]
        gc.collect()
        left = collections.Counter(type(thing).__name__ for thing in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert statuses == [200] * 10
    hangers_on = ["SessionStore", "FallbackStorage", "SimpleLazyObject", "HttpResponse"]
    handler = ["Task", "RequestAborted", "DatabaseWrapper"]
    assert {name: left[name] for name in hangers_on + handler} == dict.fromkeys(
        hangers_on + handler, 0
    )
