"""Research area: explorer. (Filled in by its feature; see graph/research/urls.py.)"""

urlpatterns: list = []
