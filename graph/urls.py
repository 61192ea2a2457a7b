from django.urls import path

from graph import views

app_name = "graph"

urlpatterns = [
    path("d/<slug:slug>/interview/<int:interview>/match/", views.match, name="match"),
]
