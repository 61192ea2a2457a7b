from django.urls import path

from elicit import views

app_name = "elicit"

urlpatterns = [
    path("", views.home, name="home"),
    path("d/<slug:slug>/", views.landing, name="landing"),
]
