# syntax=docker/dockerfile:1
# Krowoc Admin: the Streamlit dashboard on port 8501, pointed at real servers through KROWOC_*
# environment variables (see docs/operations.md). Build: docker build -t krowoc-admin .
# compose.yaml builds it too, for local development: it mounts core/, queries/, dashboard/ and
# pages/ over /app and runs Streamlit on save. The image holds no Node (the `stack` extra is the
# embedded stack's, which production never runs).

# -- builder: the project and its dependencies in a virtual environment -----------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY queries ./queries
COPY dashboard ./dashboard
COPY devstack ./devstack
COPY cli ./cli
COPY migrations ./migrations
RUN pip install --upgrade pip \
 && pip wheel --no-deps --wheel-dir /wheels . \
 && pip install /wheels/*.whl

# -- runtime: the venv, the app files, a non-root user ----------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

# The app runs from its source tree in /app (PYTHONPATH puts it ahead of the installed copy), so
# core finds alembic.ini and migrations/ beside itself; the venv brings the dependencies and the
# krowoc-admin command (docker run ... krowoc-admin migrate).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

RUN groupadd --system --gid 10001 krowoc \
 && useradd --system --uid 10001 --gid krowoc --create-home --home-dir /home/krowoc \
        --shell /usr/sbin/nologin krowoc

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY core ./core
COPY queries ./queries
COPY dashboard ./dashboard
COPY cli ./cli
COPY pages ./pages
COPY migrations ./migrations
COPY alembic.ini ./
COPY .streamlit ./.streamlit

USER krowoc

EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]

CMD ["streamlit", "run", "dashboard/app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
