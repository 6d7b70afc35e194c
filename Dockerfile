# syntax=docker/dockerfile:1
# One image for every service: `python -m consumer`, `python -m webhook_bridge`,
# `python -m projector`, `python -m sandbox`, and the `broadcast` operator CLI.
# Build: docker build -t wa-broadcast .     Compose: compose/docker-compose.yml.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# uv, pinned to the version scripts/setup installs.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# --- builder: a virtualenv at /opt/venv with the locked dependencies and the project.
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_FROZEN=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-install-project
# The project itself, installed as a wheel (not editable): the runtime stage needs
# only /opt/venv, SQL files included.
COPY README.md ./
COPY schemas ./schemas
COPY runtime ./runtime
COPY consumer ./consumer
COPY webhook_bridge ./webhook_bridge
COPY projector ./projector
COPY sandbox ./sandbox
COPY cli ./cli
COPY devstack ./devstack
COPY console ./console
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-editable

# --- runtime: the same Python, the virtualenv, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 broadcast \
 && useradd --system --uid 10001 --gid broadcast --home-dir /app --shell /usr/sbin/nologin broadcast \
 && mkdir -p /app && chown broadcast:broadcast /app
COPY --from=builder /opt/venv /opt/venv
# Inside a container the services listen on every interface (outside one they
# default to 127.0.0.1). HEALTH_PORT tells the health check which service this
# container runs: 9101 consumer, 8081 webhook_bridge, 9102 projector, 8090 sandbox,
# 8095 console.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEBHOOK_BRIDGE_HOST=0.0.0.0 \
    SANDBOX_HOST=0.0.0.0 \
    CONSUMER_METRICS_HOST=0.0.0.0 \
    PROJECTOR_METRICS_HOST=0.0.0.0 \
    CONSOLE_HOST=0.0.0.0
WORKDIR /app
USER broadcast:broadcast
# GET /readyz of whichever service runs here: "healthy" means ready to work (started,
# its dependencies reachable), which is what compose's depends_on waits for.
# A 503, a refused connection or a missing HEALTH_PORT all make the probe fail.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['HEALTH_PORT'], timeout=4)"]
CMD ["python", "-c", "print('usage: docker run [-e HEALTH_PORT=<port>] IMAGE python -m consumer|webhook_bridge|projector|sandbox|console\\n       docker run IMAGE python -m <service> --help   (its variables and defaults)\\n       docker run IMAGE broadcast --help   (operator CLI)\\nConfiguration is by environment variables; see docs/deploy.md.')"]
