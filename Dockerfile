# elcrec image: one image for the API (`elcrec serve`, the default command) and the batch jobs
# (`elcrec retrain`, `elcrec train`, `elcrec data download`).
#
#   CPU (default):  docker build -t elcrec:0.1.0-cpu .
#   CUDA:           docker build --build-arg TORCH_VARIANT=cu126 -t elcrec:0.1.0-cu126 .
#
# Behind a proxy or a mirror (defaults unchanged for everyone else; deploy/README.md "Building behind a proxy"):
#   --build-arg PYPI_INDEX_URL=https://mirror.example/simple    a PyPI mirror for every dependency
#   --build-arg TORCH_INDEX_URL=https://mirror.example/torch     where torch comes from
#   deploy/build/ca/*.crt                                         extra CA certificates pip trusts (a TLS-intercepting proxy)
#   deploy/build/wheels/*.whl                                     wheels pip takes first (an offline torch wheel, say)
#   --build-arg PYTHON_IMAGE=registry.example/python:3.11-slim-bookworm
#
# TORCH_VARIANT selects the PyTorch wheel index (https://download.pytorch.org/whl/<variant>):
# `cpu` keeps CUDA out of the image; a `cuXYZ` variant installs the CUDA build of torch together with
# its CUDA runtime wheels (nvidia-*), so the slim base works for both and only the host needs the NVIDIA
# driver + NVIDIA Container Toolkit (`docker run --gpus all`, or `gpus: all` in compose).
# See deploy/README.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# builder: a virtual environment in /opt/venv with torch from the PyTorch index and elcrec from source
# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
# Empty = the defaults (https://download.pytorch.org/whl/${TORCH_VARIANT}, https://pypi.org/simple): compose passes
# these through from the environment, set or not.
ARG TORCH_INDEX_URL=
ARG PYPI_INDEX_URL=

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# pip's configuration for this stage: the base image's CA bundle plus any deploy/build/ca/*.crt, and
# deploy/build/wheels/ as a local source that is looked at first. Both folders are empty in the repository.
COPY deploy/build/ /opt/build/
RUN cat /etc/ssl/certs/ca-certificates.crt /opt/build/ca/*.crt > /opt/build/ca-bundle.crt 2>/dev/null; \
    printf '[global]\nindex-url = %s\ncert = /opt/build/ca-bundle.crt\nfind-links = /opt/build/wheels\n' \
        "${PYPI_INDEX_URL:-https://pypi.org/simple}" > /etc/pip.conf

# torch first and from its own index: the largest layer, reused until TORCH_* changes. With a wheel in
# deploy/build/wheels, pip takes it (a +cpu local version sorts above the same release on an index).
RUN python -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/${TORCH_VARIANT}}" "torch==${TORCH_VERSION}"

WORKDIR /src

# Third-party dependencies from pyproject.toml alone, so editing the code does not reinstall them.
# torch==X matches the installed X+cpu / X+cuXYZ build, so pip keeps it.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY elcrec ./elcrec
COPY model ./model
COPY training ./training
COPY service ./service
RUN pip install --no-deps . \
    && elcrec --help > /dev/null

# ---------------------------------------------------------------------------------------------------
# runtime: the venv only, no compiler, no source tree, non-root
# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG TORCH_VARIANT=cpu

LABEL org.opencontainers.image.title="elcrec" \
      org.opencontainers.image.description="ELCRec sequential recommender: API (elcrec serve) and batch jobs" \
      org.opencontainers.image.licenses="MIT" \
      io.elcrec.torch-variant="${TORCH_VARIANT}"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/elcrec \
    ELCREC_DEVICE=auto \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Fixed numeric ids: Kubernetes' runAsNonRoot can only verify a numeric USER.
# /artifacts and /data are created owned by that user so that fresh named volumes inherit the ownership.
RUN groupadd --system --gid 10001 elcrec \
    && useradd --system --uid 10001 --gid elcrec --home-dir /home/elcrec --create-home \
        --shell /usr/sbin/nologin elcrec \
    && mkdir -p /artifacts /data \
    && chown elcrec:elcrec /artifacts /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/elcrec

EXPOSE 8000

# Ready = model loaded and Redis reachable. Slim images have no curl: use the interpreter.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["elcrec"]
CMD ["serve", "--artifacts", "/artifacts", "--host", "0.0.0.0", "--port", "8000"]
