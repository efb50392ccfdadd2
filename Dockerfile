# syntax=docker/dockerfile:1
# The reconciler image: the daemon in a cluster (deploy/), the CLI in CI, and the base of
# algorithm images (their engine containers run `reconciler worker` with code under /code
# and data under /data).
#
#   docker build -t reconciler:0.2.0 .
#   docker run --rm -v "$PWD:/repo:ro" reconciler:0.2.0 validate /repo
#
# tests/ship runs this file's two pip commands (a wheel, installed into a fresh venv), and
# hadolint lints it (make lint, make test).

# Both stages use one base: Python 3.11, pinned to a patch release (update both together).

# --- build: the reconciler wheel and the wheels of its pinned dependencies -------------
FROM python:3.11.14-slim-trixie AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY schemas/ schemas/
COPY reconciler/ reconciler/
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels /src

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11.14-slim-trixie
# VERSION: reconciler.__version__ (a test keeps this default equal to it).
ARG VERSION=0.2.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="reconciler" \
      org.opencontainers.image.description="Declarative GitOps reconciler for a machine-learning model-serving platform" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/YOUR-ORG/reconciler" \
      org.opencontainers.image.documentation="https://github.com/YOUR-ORG/reconciler#readme" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-trixie"

# git: the daemon clones the config repository; openssh-client: for git@host URLs.
# Versions are not pinned: the base image is, and Debian security updates must reach
# the next build (a pinned Debian version disappears from the mirror when superseded).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && printf 'Host *\n    GlobalKnownHostsFile /etc/reconciler/git/known_hosts /etc/ssh/ssh_known_hosts\n' \
       > /etc/ssh/ssh_config.d/reconciler.conf

COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels /wheels/reconciler-*.whl \
    && rm -rf /wheels

# A numeric non-root user (runAsNonRoot can check it without /etc/passwd); its home,
# the state and the caches are volumes in deploy/ (the root filesystem is read-only).
RUN groupadd --gid 10001 reconciler \
    && useradd --uid 10001 --gid 10001 --home-dir /home/reconciler --create-home \
       --shell /usr/sbin/nologin reconciler \
    && mkdir -p /code /data /var/lib/reconciler \
    && chown 10001:10001 /var/lib/reconciler

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/reconciler \
    RECONCILER_STATE=/var/lib/reconciler
USER 10001:10001
WORKDIR /home/reconciler
EXPOSE 8080

# /healthz of `reconciler daemon --listen 0.0.0.0:8080`, or of `reconciler worker` in an
# algorithm image: the port of RECONCILER_LISTEN, or all of RECONCILER_HEALTHCHECK_URL
# (reconciler/healthcheck.py; no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "reconciler.healthcheck"]

ENTRYPOINT ["reconciler"]
CMD ["--help"]
