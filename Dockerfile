# syntax=docker/dockerfile:1
# newsbot: the bot (`newsbot run`) and its workers (`newsbot worker`) from one image.
#
#   docker build -t newsbot .                                  # models downloaded at first start
#   docker build -t newsbot --build-arg BAKE_MODELS=1 .        # models baked into the image
#
# Runtime layout: /data holds the SQLite file (embedded mode), /models the Hugging Face cache
# (HF_HOME); both are volumes. The process runs as the unprivileged user `newsbot`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtual environment with CPU-only torch and newsbot ----------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch from PyTorch's CPU wheel index first: the default index would pull a multi-GB CUDA build.
# Keep this pin equal to the one in pyproject.toml (tests/test_ops_docker.py checks it).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY summarizer ./summarizer
# EXTRAS: optional extras of pyproject.toml to install as well (e.g. test).
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tcmalloc speeds up beam search (see docs/speed.md); nothing else is needed at run time
# (psycopg's binary wheel bundles libpq, torch bundles its OpenMP runtime).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgoogle-perftools4 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin newsbot \
    && mkdir -p /data /models \
    && chown newsbot:newsbot /data /models
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/models \
    DATA_DIR=/data \
    HEALTH_LISTEN=0.0.0.0 \
    HEALTH_PORT=9090
USER newsbot
WORKDIR /home/newsbot

# Optionally download the configured models into /models now (before VOLUME, or they'd be discarded).
ARG BAKE_MODELS=0
ARG SUMMARY_MODEL=csebuetnlp/mT5_multilingual_XLSum
ARG TRANSLATION_MODEL=Helsinki-NLP/opus-mt-{src}-{tgt}
RUN if [ "$BAKE_MODELS" = "1" ]; then \
        SUMMARY_MODEL="$SUMMARY_MODEL" TRANSLATION_MODEL="$TRANSLATION_MODEL" newsbot models fetch; \
    fi
VOLUME ["/data", "/models"]

# 9090: /healthz, /readyz, /metrics. 8443: webhook mode (WEBHOOK_PORT), behind a reverse proxy.
EXPOSE 9090 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '9090') + '/healthz', timeout=4)"]
ENTRYPOINT ["newsbot"]
CMD ["run"]
