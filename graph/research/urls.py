"""URLs of the research area, mounted at /research/. Each module owns its own list so that the
parts of the area stay apart: the dashboard and reconciliation, the explorer, pilots, downloads."""

from graph.research import dashboard, downloads, explorer, pilot

app_name = "research"

urlpatterns = [
    *dashboard.urlpatterns,
    *explorer.urlpatterns,
    *pilot.urlpatterns,
    *downloads.urlpatterns,
]
