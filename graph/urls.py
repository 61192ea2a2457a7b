from django.urls import path

from graph import privacy_views, views

app_name = "graph"

urlpatterns = [
    path("d/<slug:slug>/interview/<int:interview>/match/", views.match, name="match"),
    path("d/<slug:slug>/vote/", views.vote, name="vote"),
    path("d/<slug:slug>/judge/", views.judge, name="judge"),
    path("d/<slug:slug>/judgments/", views.judgments, name="judgments"),
    path("d/<slug:slug>/judgments/<int:pk>/", views.revise_judgment, name="revise_judgment"),
    path("d/<slug:slug>/done/", views.done, name="done"),
    # A participant's own data, from their session or their personal receipt link.
    path("d/<slug:slug>/my-data/", privacy_views.my_data, name="my_data"),
    path("d/<slug:slug>/my-data/download/", privacy_views.download, name="download_my_data"),
    path("d/<slug:slug>/my-data/delete/", privacy_views.delete, name="delete_my_data"),
    path("r/<slug:token>/my-data/", privacy_views.my_data, name="my_data_receipt"),
    path("r/<slug:token>/my-data/download/", privacy_views.download, name="download_receipt"),
    path("r/<slug:token>/my-data/delete/", privacy_views.delete, name="delete_receipt"),
    path("r/<slug:token>/", views.receipt, name="receipt"),
    path("d/<slug:slug>/report/", views.report, name="report"),
]
