# syntax=docker/dockerfile:1
# Córtex in a container: the gateway alone, or with the embedded model (--build-arg EMBEDDED=1).
#   docker build -t cortex .                      # the gateway: point it at a model server
#   docker build -t cortex:embedded --build-arg EMBEDDED=1 .
# The builder compiles llama.cpp's binding (EMBEDDED=1 only) with scripts/llama-wheel's portable
# flags and installs everything into a virtual environment; the final stage copies that venv
# onto a clean slim image: no compiler, no build files, a non-root user. See docs/deploy.md.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-trixie AS builder
ARG EMBEDDED=0
# Replaces scripts/llama-wheel's baseline flags (which follow the build machine: x86-64-v3 with AVX2).
ARG CORTEX_LLAMA_CMAKE_ARGS=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only when llama.cpp is built, and only in this stage. Debian's packages are not
# pinned to versions (DL3008): the archive drops old versions, so a pin breaks the build later.
# hadolint ignore=DL3008
RUN if [ "$EMBEDDED" = 1 ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends build-essential cmake \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts/llama-wheel ./scripts/llama-wheel
RUN python -m venv /opt/cortex \
    && if [ "$EMBEDDED" = 1 ]; then \
         wheel=$(CORTEX_WHEELHOUSE=/tmp/wheels ./scripts/llama-wheel /opt/cortex/bin/python) \
         && /opt/cortex/bin/pip install "$wheel" ".[local]"; \
       else \
         /opt/cortex/bin/pip install .; \
       fi \
    && rm -rf /tmp/wheels

FROM python:${PYTHON_VERSION}-slim-trixie
ARG EMBEDDED=0
LABEL org.opencontainers.image.title="Córtex" \
      org.opencontainers.image.description="A streaming gateway for local LLMs" \
      org.opencontainers.image.licenses="MIT"
# llama.cpp's binding is built with OpenMP: its runtime is the one native library it needs
# (unpinned, as above).
# hadolint ignore=DL3008
RUN if [ "$EMBEDDED" = 1 ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 cortex \
    && useradd --system --uid 10001 --gid cortex --home-dir /home/cortex --create-home \
       --shell /usr/sbin/nologin cortex
COPY --from=builder /opt/cortex /opt/cortex
# Córtex listens on 127.0.0.1 by default; inside a container only 0.0.0.0 can be published,
# so it is set here, explicitly. Override CORTEX_HOST to change it.
ENV PATH=/opt/cortex/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CORTEX_HOST=0.0.0.0 \
    CORTEX_PORT=4000
# Numeric, so Kubernetes can check runAsNonRoot against it.
USER 10001:10001
WORKDIR /home/cortex
EXPOSE 4000
# The slim image has no curl: Python asks /health on the loopback address.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CORTEX_PORT', '4000') + '/health', timeout=2)"]
# SIGTERM starts the drain: answers in flight run on for drain_timeout seconds (default 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cortex", "serve"]
