"""Websocket routes (see config/asgi.py)."""

from django.urls import path

from elicit.consumers import InterviewConsumer

websocket_urlpatterns = [
    path("ws/interview/<int:interview_id>/", InterviewConsumer.as_asgi()),
]
