# Two images from one file. The last stage, `production` (what `docker build .` builds), runs
# every process of the portal: web (gunicorn, the default CMD), the Celery worker and beat and the
# one-off migrate job. It holds requirements.txt and the portal's own code only: no moto, no
# sandbox, no tests, no benchmarks. `--target sandbox` builds the local AWS sandbox instead
# (moto plus sandbox/), for the compose profile of the same name. docker-compose.yml picks the
# target and the command per service; docs/docker.md explains how to run it.
# https://docs.docker.com/build/building/multi-stage/

# ---- base: Python, the portal's pinned requirements and the runtime user -----------------------
FROM python:3.11-slim AS base

# No .pyc files (the code directory is read-only to the runtime user anyway) and unbuffered
# stdout/stderr, so logs reach `docker compose logs` at once.
# PORTAL_VAR_DIR: settings.py creates it on start-up; it must be writable by the runtime user.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORTAL_VAR_DIR=/var/lib/portal

WORKDIR /app

# Dependencies first, so that a code change does not re-install them. Every pinned package ships
# a manylinux wheel (psycopg[binary] included): no compiler needed.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The runtime user owns only the var directory and its exports folder (the volumes compose mounts
# there start as copies of them, so they are the runtime user's too); the code and the collected
# static files stay root-owned and read-only to it.
RUN groupadd --system --gid 10001 portal \
    && useradd --system --uid 10001 --gid portal --create-home --home-dir /home/portal \
        --shell /usr/sbin/nologin portal \
    && install -d -o portal -g portal -m 0750 /var/lib/portal /var/lib/portal/exports

# ---- sandbox: the local AWS sandbox (`docker compose --profile sandbox`), never in production ---
FROM base AS sandbox

# requirements-sandbox.txt adds moto's server (and honcho, for `make run`) to requirements.txt.
COPY requirements-sandbox.txt ./
RUN pip install --no-cache-dir -r requirements-sandbox.txt

# The sandbox needs no settings, no database and none of the portal's code.
COPY sandbox/ sandbox/

USER portal
EXPOSE 5055
CMD ["python", "-m", "sandbox", "--host", "0.0.0.0", "--port", "5055"]

# ---- production: the portal (the default target, so it comes last) ----------------------------
FROM base AS production

# Only what the portal runs. .dockerignore keeps imports/tests out as well: the tests need pytest
# and the sandbox, which this image does not have.
COPY manage.py ./
COPY portal/ portal/
COPY imports/ imports/
COPY templates/ templates/
COPY static/ static/

# Collect static files for WhiteNoise's manifest storage (used when DEBUG is off). The secret keys
# and var dir below are throwaway values for this one build step only: they are set on the RUN
# line, not with ENV or ARG, so they are never part of the runtime environment.
# https://whitenoise.readthedocs.io/en/stable/django.html
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY=build-only-collectstatic-key-not-used-at-runtime \
    PORTAL_AUDIT_KEY=build-only-collectstatic-audit-key-not-used-at-runtime \
    PORTAL_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var

USER portal

EXPOSE 8000

# gunicorn: workers from GUNICORN_WORKERS (default 3), access log to stdout. `exec` makes gunicorn
# PID 1 so it receives `docker stop`'s SIGTERM and shuts down gracefully. The heartbeat files go to
# /dev/shm, not a disk-backed /tmp, which can block workers in containers.
# https://docs.gunicorn.org/en/stable/settings.html#worker-tmp-dir
CMD ["sh", "-c", "exec gunicorn portal.wsgi:application --bind 0.0.0.0:8000 --workers \"${GUNICORN_WORKERS:-3}\" --worker-tmp-dir /dev/shm --access-logfile -"]
