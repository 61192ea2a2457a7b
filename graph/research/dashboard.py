"""Research area: dashboard. (Filled in by its feature; see graph/research/urls.py.)"""

urlpatterns: list = []
