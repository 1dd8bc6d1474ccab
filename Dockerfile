# Draftsmith: `docker build -t draftsmith .` then
#   docker run -p 3000:3000 -v draftsmith-data:/data --env-file .env --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined draftsmith
# runs the embedded default (SQLite + embedded Redis in /data). Set DATABASE_URL/REDIS_URL to share them,
# and run more containers with `worker` as the command to add workers. The three --security-opt let
# bubblewrap build each run's sandbox (user namespace, mounts, its own /proc); README "Running in Docker".

# --- build: resolve and install the locked dependencies and the app into a venv -------------------
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, so editing the app does not invalidate this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY migrations ./migrations
COPY app.yml ./app.yml
# --no-editable installs a real wheel (migrations included) so the runtime image needs no /src.
RUN uv sync --frozen --no-dev --no-editable

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim
# bubblewrap isolates agent runs; git clones and pushes the repositories agents work on.
# Not pinned to Debian versions (DL3008): the mirror drops old ones, so a pin breaks the next build,
# and the python:3.11-slim tag already fixes the release these come from.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 draftsmith \
 && mkdir /data && chown draftsmith:draftsmith /data
COPY --from=build /opt/venv /opt/venv
# uv stays in the image: `draftsmith agents install` uses it for the PyPI agents.
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /usr/local/bin/uv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DRAFTSMITH_HOST=0.0.0.0 \
    DRAFTSMITH_PORT=3000 \
    DRAFTSMITH_DATA_DIR=/data \
    DRAFTSMITH_AGENTS_DIR=/opt/agents
# The default agent, at its pin (app/agents/versions.py), outside the /data volume so an old volume
# cannot hide a newer image's agent. More: `docker exec CONTAINER draftsmith agents install NAME`
# (npm ones need Node.js in the image).
RUN UV_NO_CACHE=1 draftsmith agents install mini-swe-agent \
 && mkdir -p /opt/agents && chown draftsmith:draftsmith /opt/agents
USER 10001
WORKDIR /data
VOLUME /data
EXPOSE 3000
# serve stops its children in order on SIGTERM (web, then workers, then Redis) within its grace period.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)"]
ENTRYPOINT ["draftsmith"]
CMD ["serve"]
