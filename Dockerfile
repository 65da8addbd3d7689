# syntax=docker/dockerfile:1
# The tasking worker image: a virtualenv built in one stage, copied into a slim runtime that runs
# as a numeric non-root user under tini. Build: docker build -t tasking-worker .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: dependencies in their own layer, then the package -----------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Only the project metadata first: this layer (all third-party dependencies) is rebuilt only when
# pyproject.toml changes. An empty package stands in for the sources so pip can resolve it.
COPY pyproject.toml README.md ./
RUN mkdir worker \
    && touch worker/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes tasking-worker \
    && rm -rf worker build ./*.egg-info

COPY worker ./worker
RUN pip install --no-cache-dir --no-deps . \
    && tasking-worker --help > /dev/null

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="tasking-worker" \
      org.opencontainers.image.description="Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tasking-worker/tasking-worker" \
      org.opencontainers.image.vendor="tasking-worker maintainers"

# tini reaps zombies and forwards SIGTERM to the worker, which then drains gracefully.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini=0.19.0-1* \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 tasking \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin tasking

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TASKING_HTTP__PORT=8080

# Numeric, so Kubernetes can verify runAsNonRoot without resolving names.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080

# No curl in the slim image: Python asks /livez; an HTTP error or timeout exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TASKING_HTTP__PORT', '8080') + '/livez', timeout=4)"]

ENTRYPOINT ["tini", "--", "tasking-worker"]
CMD ["run"]
