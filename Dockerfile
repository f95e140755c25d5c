# syntax=docker/dockerfile:1
# Production image: a build stage installs the service into a virtualenv, the
# runtime stage copies only that virtualenv and the weights (no pip, no sources).
#   docker build -t mnist-serve:0.1.0 .
#   docker run -p 8000:8000 -e MNIST_SERVE_WORKERS=2 mnist-serve:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so that a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir core app \
    && touch core/__init__.py app/__init__.py \
    && pip install . \
    && pip uninstall --yes mnist-serve
COPY core ./core
COPY app ./app
RUN pip install --no-deps . \
    && python -c "import app.main, core"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MNIST_SERVE_WEIGHTS=/srv/mnist-serve/weights/sample_weight.pkl \
    MNIST_SERVE_WORKERS=1 \
    MNIST_SERVE_BLAS_THREADS=1 \
    MNIST_SERVE_LOG_FORMAT=json
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mnist
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/mnist-serve
# The weights are baked in; MNIST_SERVE_WEIGHTS points elsewhere to override.
COPY weights ./weights
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"]
# Every MNIST_SERVE_* variable configures the service (MNIST_SERVE_WORKERS: --workers).
CMD ["mnist-serve", "--host", "0.0.0.0", "--port", "8000"]
