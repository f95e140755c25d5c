# Production image in two stages. The build stage installs the locked
# dependencies (requirements/runtime.txt, hashes checked) and the service into a
# virtualenv, compiled to bytecode; the runtime stage gets that virtualenv without
# pip, setuptools or wheel (the shipped weights are package data): no build
# tools, no source tree.
#   docker build -t mnist-serve:0.1.0 .
#   docker run --rm -p 127.0.0.1:8000:8000 -e MNIST_SERVE_WORKERS=2 mnist-serve:0.1.0
# Without Docker Hub, deploy/docker/build-and-test.sh makes Debian bases with
# debootstrap and passes them as PYTHON_IMAGE (with pip and venv) and
# RUNTIME_IMAGE (the same system without them).

ARG PYTHON_IMAGE=python:3.11-slim
ARG RUNTIME_IMAGE=${PYTHON_IMAGE}

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Two virtualenvs: /opt/build holds pip and the locked build backend; /opt/venv,
# made without pip, receives the service (pip --python installs into it) and is
# all that the runtime stage copies.
COPY requirements/runtime.txt requirements/build.txt requirements/
RUN python -m venv /opt/build \
    && python -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r requirements/build.txt
# Dependencies before the sources, so that a source change does not reinstall
# them. Wheels only: nothing is compiled, so the build needs no compiler.
# Bytecode is compiled here and never checked against the sources at run time
# (they cannot change), so that a read-only container does not compile every
# module at each start.
RUN /opt/build/bin/pip --python /opt/venv/bin/python install --no-compile \
        --require-hashes --no-deps --only-binary=:all: -r requirements/runtime.txt \
    && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib
COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY app ./app
COPY weights ./weights
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index -w /tmp/dist . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-compile \
        --no-deps --no-index /tmp/dist/*.whl \
    && site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
    && python -m compileall -q --invalidation-mode unchecked-hash \
        "$site/app" "$site/core" "$site/weights" \
    && /opt/venv/bin/python -c "import app.main, core, weights; weights.shipped_file()"

FROM ${RUNTIME_IMAGE} AS runtime
# build-and-test.sh passes all three (the version from pyproject.toml).
ARG VERSION=unknown
ARG LOCK_SHA256=unknown
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="mnist-serve" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="MIT" \
      io.mnist-serve.lock.sha256="${LOCK_SHA256}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MNIST_SERVE_HOST=0.0.0.0 \
    MNIST_SERVE_PORT=8000 \
    MNIST_SERVE_GRPC_PORT=8001 \
    MNIST_SERVE_WORKERS=1 \
    MNIST_SERVE_BLAS_THREADS=1 \
    MNIST_SERVE_LOG_FORMAT=json
# A regular (non-system) uid/gid 10001, so that useradd neither warns nor picks
# a group for us. When RUNTIME_IMAGE is an image with pip, the interpreter's
# packaging tools go: Debian's packages with dpkg (pip will not remove them),
# an interpreter of its own (python:*-slim) with pip itself.
RUN groupadd --gid 10001 mnist \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --no-log-init mnist \
    && if [ "$(dpkg-query --show --showformat='${db:Status-Status}' python3-pip 2>/dev/null)" \
            = installed ]; then \
        dpkg --purge python3-pip python3-setuptools python3-wheel python3-pkg-resources \
            python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl; \
    elif python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes pip setuptools wheel; \
    fi
# The shipped weights are package data in the virtualenv; mount a file and
# point MNIST_SERVE_WEIGHTS at it to serve another network.
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# HTTP (MNIST_SERVE_PORT) and the Open Inference Protocol over gRPC
# (MNIST_SERVE_GRPC_PORT).
EXPOSE 8000 8001
# The port the service was told to use (MNIST_SERVE_PORT); the start period covers
# the slowest start measured (see the README's container section).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-I", "-S", "-c", "import os, sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('MNIST_SERVE_PORT', '8000'), timeout=2).status != 200)"]
# Host, port, workers and every other setting come from MNIST_SERVE_* variables.
CMD ["mnist-serve"]
