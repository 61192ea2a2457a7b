from django.urls import path

from elicit import views

app_name = "elicit"

urlpatterns = [
    path("", views.home, name="home"),
    path("d/<slug:slug>/", views.landing, name="landing"),
    path("d/<slug:slug>/join/", views.join, name="join"),
    path("d/<slug:slug>/interview/", views.interview_page, name="interview"),
    path("d/<slug:slug>/interview/<int:pk>/send/", views.send_message, name="send"),
    path("d/<slug:slug>/interview/<int:pk>/card/", views.confirm_card, name="confirm_card"),
]
