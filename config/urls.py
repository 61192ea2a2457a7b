from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("research/", include("graph.research.urls")),
    path("moderation/", include("graph.moderation.urls")),
    path("", include("elicit.urls")),
    path("", include("graph.urls")),
]

handler404 = "elicit.views.not_found"
handler500 = "config.views.server_error"
