#!/bin/sh
# The one entry point of the container image (deploy/Dockerfile), also runnable from a checkout
# with the virtual environment's bin folder on PATH. One mode per process:
#
#   web       the ASGI server (uvicorn): HTTP and websockets, on $HOST:$PORT (0.0.0.0:8000)
#   worker    a Celery worker ($CELERY_CONCURRENCY processes, default 2)
#   beat      Celery beat: the schedule; run exactly one
#   migrate   apply migrations (run once per release, before the others start), then the
#             deployment checks; SEED_DEMO=true also creates the demo deliberation
#   health    health check of a mode (web|worker|beat): exit 0 when healthy
#
# Anything else is run as a command (e.g. `entrypoint.sh python manage.py createsuperuser`).
set -eu
cd "$(dirname "$0")/.."

mode="${1:-web}"
[ $# -gt 0 ] && shift

case "$mode" in
  web)
    # --proxy-headers: the client address and scheme come from X-Forwarded-For/-Proto, but only
    # when the connection comes from FORWARDED_ALLOW_IPS (the reverse proxy), never from anyone.
    # Idle keep-alive connections stay open longer than the proxy keeps them (nginx: 60 s), so
    # that the proxy never sends a request on a connection the server is closing.
    exec uvicorn config.asgi:application \
      --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
      --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
      --lifespan off --no-server-header --no-access-log --timeout-graceful-shutdown 20 \
      --timeout-keep-alive "${KEEP_ALIVE_SECONDS:-75}" "$@"
    ;;
  worker)
    # Below the web servers' CPU priority (WORKER_NICE, 0-19, default 10): where they share a
    # host, the pipeline takes the CPU the participants' requests leave, instead of queueing
    # those requests behind it (bench/load.py). Containers are scheduled by their own weight
    # instead (compose.yaml: cpu_shares).
    nice="${WORKER_NICE:-10}"
    case "$nice" in
      *[!0-9]*) nice=invalid ;;
    esac
    if [ "$nice" = invalid ] || [ "$nice" -gt 19 ]; then
      echo "entrypoint.sh worker: WORKER_NICE must be a whole number from 0 to 19, not '${WORKER_NICE-}'" >&2
      exit 2
    fi
    exec nice -n "$nice" celery -A config worker --loglevel "${LOG_LEVEL:-info}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" --without-gossip --without-mingle "$@"
    ;;
  beat)
    exec celery -A config beat --loglevel "${LOG_LEVEL:-info}" "$@"
    ;;
  migrate)
    python manage.py migrate --noinput
    # Warnings are printed (see the README's production checklist); only errors stop here.
    python manage.py check --deploy --fail-level ERROR
    if [ "${SEED_DEMO:-false}" = "true" ]; then
      python manage.py seed_demo
    fi
    ;;
  health)
    case "${1:-web}" in
      web)
        # /healthz checks the database, the broker and the channel layer (503 if any fails).
        exec python - "http://127.0.0.1:${PORT:-8000}/healthz" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:
    print(f"unhealthy: {error}", file=sys.stderr)
    sys.exit(1)
PY
        ;;
      worker)
        # The worker of this host answers a ping through the broker.
        exec celery -A config inspect ping --destination "celery@$(hostname)" --timeout 10
        ;;
      beat)
        # Beat only sends: healthy while it can reach the broker.
        exec python - <<'PY'
import os, sys
from kombu import Connection
url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""
if not url:
    sys.exit("unhealthy: no broker configured")
try:
    Connection(url, connect_timeout=5).ensure_connection(max_retries=1)
except Exception as error:
    sys.exit(f"unhealthy: {error}")
PY
        ;;
      *)
        echo "entrypoint.sh health: unknown mode '$1' (web, worker or beat)" >&2
        exit 2
        ;;
    esac
    ;;
  *)
    exec "$mode" "$@"
    ;;
esac
