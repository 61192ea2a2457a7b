"""Websocket routes (see config/asgi.py)."""

websocket_urlpatterns: list = []
