"""The research area (`/research/`): dashboards, reconciliation views, the graph explorer, pilots
and exports. Read-only over scoring runs, except the deliberation setup. Views are thin: they
fetch the deliberation with `graph.research.access`, call a service, and render."""
