# syntax=docker/dockerfile:1
# mms-connector image: `mms-connector serve` (uvicorn) as a non-root user.
# Kept consistent with the Helm chart (helm/mms-connector): user 10001, port 8080, config at
# /etc/mms-connector/config.yaml, media at /var/lib/mms-connector/media, schemas at
# /app/schemas. tests/helm/test_dockerfile.py checks that both agree.
#
#   docker build -t mms-connector:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the connector and its dependencies -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The translation path is compiled by mypyc (setup.py): a C compiler and Python's headers here,
# never below. Every dependency ships manylinux wheels.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# mypyc (mypy) in a venv of its own, beside the dependencies: it type-checks the modules against
# them, as the tests' compiled build does. Only the wheel it builds goes into /opt/venv.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install -q mypy==2.4.1 "setuptools>=70.1"
WORKDIR /src
COPY pyproject.toml setup.py ./
COPY connector ./connector
RUN /opt/build/bin/pip install -q --no-build-isolation . \
 && MMS_MYPYC=1 /opt/build/bin/pip wheel -q --no-build-isolation --no-deps -w /tmp/wheels .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-compile /tmp/wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: the virtualenv and the schemas, nothing to build with --------------------------
FROM ${PYTHON_IMAGE} AS runtime
# No pip/setuptools/wheel either: nothing is installed at run time.
RUN pip uninstall --yes --quiet pip setuptools wheel
RUN groupadd --system --gid 10001 mms \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin mms \
 && mkdir -p /etc/mms-connector /var/lib/mms-connector/media \
 && chown 10001:10001 /var/lib/mms-connector/media
COPY --from=build /opt/venv /opt/venv
COPY schemas/ /app/schemas/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MMS_SCHEMA_DIR=/app/schemas
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# uvicorn handles SIGTERM: stop accepting, finish in-flight callbacks, then flush Kafka.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mms-connector", "serve"]
CMD ["--config", "/etc/mms-connector/config.yaml"]
