"""URLs of the moderation pages, mounted at /moderation/."""

from django.urls import path

from graph.moderation import views

app_name = "moderation"

urlpatterns = [
    path("", views.queue_page, name="queue"),
    path("claim-next/", views.claim_next, name="claim_next"),
    path("flags/<int:pk>/", views.flag_page, name="flag"),
    path("flags/<int:pk>/claim/", views.claim, name="claim"),
    path("flags/<int:pk>/release/", views.release, name="release"),
    path("flags/<int:pk>/act/", views.act, name="act"),
    path("cards/<int:pk>/edit/", views.edit_card, name="edit_card"),
    path("cards/<int:pk>/split/", views.split_card, name="split_card"),
    path("values/", views.values_page, name="values"),
    path("values/<int:pk>/", views.value_page, name="value"),
    path("values/<int:pk>/merge/", views.merge_value, name="merge_value"),
    path("log/", views.log_page, name="log"),
    path("log.csv", views.log_csv, name="log_csv"),
    path("actions/<int:pk>/undo/", views.undo, name="undo"),
]
