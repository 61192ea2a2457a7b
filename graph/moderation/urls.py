"""URLs of the moderation pages, mounted at /moderation/."""

app_name = "moderation"

urlpatterns: list = []
