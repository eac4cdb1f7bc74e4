# The gpupool operator image: the package and its dependencies on a slim Python, run as a numeric
# non-root user. Build: `make image` (README: "Build and publish the image").
#
# The base is pinned to an exact patch release and Debian release; pin it by digest as well when
# publishing (`python:3.11.14-slim-bookworm@sha256:...`), so a rebuild cannot change it silently.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what building the wheel needs: the package, its metadata and the README it declares.
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/gpupool \
 && /opt/gpupool/bin/pip install --no-compile . \
 && /opt/gpupool/bin/python -m compileall -q /opt/gpupool/lib

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/gpupool/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/gpupool /opt/gpupool
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["gpupool", "run"]
