# syntax=docker/dockerfile:1
# MAESTRO Gate container image.
#
#   docker build -t maestro-gate:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v maestro-gate-data:/var/lib/maestro-gate \
#     -p 127.0.0.1:8080:8080 maestro-gate:0.1.0
#
# The runtime stage runs as an unprivileged user and writes only to the declared volume
# /var/lib/maestro-gate (SQLite audit file, keys) and to /tmp (mount a tmpfs there), so it works
# with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a self-contained virtualenv holding the wheel and its dependencies -------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# gcc and g++ build the engine's two small extensions (service/maestro_gate/engine/_rego.c and
# _patches.cc); the runtime image needs libstdc++6, which python:3.11-slim already holds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/maestro-gate
# README.md is the distribution's long description; the glob keeps the build working before it exists.
COPY pyproject.toml README.md* ./
COPY requirements/ requirements/
COPY service/ service/
# OPA's own engine (MAESTRO_GATE_ENGINE=opa-inprocess): see requirements/opa-engine.txt for why
# it is installed apart, with --ignore-requires-python.
# regopy first, from its lock with hashes (requirements/regopy.txt says why it is pinned).
RUN /opt/maestro-gate/bin/pip install --no-deps --require-hashes -r requirements/regopy.txt \
 && /opt/maestro-gate/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/maestro-gate/bin/pip install /wheels/*.whl \
 && /opt/maestro-gate/bin/pip install --ignore-requires-python --no-deps --require-hashes \
      -r requirements/opa-engine.txt \
 && /opt/maestro-gate/bin/maestro-gate --help >/dev/null

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
ARG GID=10001
LABEL org.opencontainers.image.title="maestro-gate" \
      org.opencontainers.image.description="Policy decision point for multi-agent AI systems (MAESTRO layers)" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${GID}" maestro \
 && useradd --system --uid "${UID}" --gid maestro --no-create-home \
      --home-dir /var/lib/maestro-gate --shell /usr/sbin/nologin maestro \
 && install -d -o "${UID}" -g "${GID}" -m 0750 /var/lib/maestro-gate

COPY --from=builder /opt/maestro-gate /opt/maestro-gate
WORKDIR /app
# Policies and the MAESTRO catalog are read-only data owned by root.
COPY policies/ /app/policies/
COPY catalog/ /app/catalog/
# The relative default DSN (sqlite:///var/audit.db) resolves to ./var inside the volume.
RUN ln -s /var/lib/maestro-gate /app/var

ENV PATH=/opt/maestro-gate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/var/lib/maestro-gate \
    MAESTRO_GATE_HOST=0.0.0.0 \
    MAESTRO_GATE_PORT=8080 \
    MAESTRO_GATE_BUNDLE_DIR=/app/policies \
    MAESTRO_GATE_AUDIT_DSN=sqlite:////var/lib/maestro-gate/audit.db

VOLUME ["/var/lib/maestro-gate"]
USER ${UID}:${GID}
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MAESTRO_GATE_PORT', '8080'), timeout=2)"]

ENTRYPOINT ["maestro-gate", "serve"]
