from django.urls import path

from graph import views

app_name = "graph"

urlpatterns = [
    path("d/<slug:slug>/interview/<int:interview>/match/", views.match, name="match"),
    path("d/<slug:slug>/vote/", views.vote, name="vote"),
    path("d/<slug:slug>/judge/", views.judge, name="judge"),
    path("d/<slug:slug>/judgments/", views.judgments, name="judgments"),
    path("d/<slug:slug>/judgments/<int:pk>/", views.revise_judgment, name="revise_judgment"),
    path("d/<slug:slug>/done/", views.done, name="done"),
]
