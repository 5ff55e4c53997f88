# Example image: Debian with Python 3 and NumPy. The base is made locally by
# `madengine base-image` (no registry needed); pass BASE_DOCKER to use another one.
ARG BASE_DOCKER=madengine/base:bookworm
FROM ${BASE_DOCKER}
LABEL org.opencontainers.image.description="madengine example: CPU benchmarks with NumPy"
