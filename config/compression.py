"""Compressed pages, uncompressed downloads.

The explorer of a large deliberation is a 1.1 MiB page (its SVG), about 160 KiB gzipped: without
a proxy that compresses, it went out whole. Django's GZipMiddleware compresses pages for the
browsers that ask (``Accept-Encoding: gzip``); since Django 4.2 it pads each response with up
to 100 random bytes (``max_random_bytes``), which with the per-request masking of the CSRF
token defeats BREACH-style guessing of secrets from compressed lengths.

Streamed responses are left alone. They are the downloads (exports, the moderation log as
CSV): under ASGI they are async iterators, which Django compresses chunk by chunk into
separate gzip members, each with its own header and random padding, so a stream of small rows
comes out larger than it went in and some clients read only the first member; the zip exports
are compressed already. Static files never reach this middleware: ServeStatic, above it,
answers them with its own precompressed copies. Websockets are not HTTP responses and do not
pass through any Django middleware.
"""

from __future__ import annotations

from django.middleware.gzip import GZipMiddleware


class PageGZipMiddleware(GZipMiddleware):
    def process_response(self, request, response):
        if response.streaming:
            return response
        return super().process_response(request, response)
