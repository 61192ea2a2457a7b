"""Research area: downloads. (Filled in by its feature; see graph/research/urls.py.)"""

urlpatterns: list = []
