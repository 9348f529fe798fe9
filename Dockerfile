# syntax=docker/dockerfile:1.7
#
# One Dockerfile, two images (both run as uid 1000, render.py's RUN_AS_USER):
#
#   docker build --target operator -t ghcr.io/stylegan-operator/operator:0.1.0 .
#   docker build --target trainer  -t ghcr.io/stylegan-operator/trainer:0.1.0 .
#
# * builder           builds the project's wheel (pure Python) from this checkout
# * venv-operator     a virtualenv with the wheel alone: the operator's dependencies, no torch
# * venv-trainer      a virtualenv with CUDA torch and the wheel with its [trainer,plot] extras
# * operator, trainer the final images: the base OS, python3 and the virtualenv copied in;
#                     no compiler, no pip, no package caches
#
# Every base image is pinned by digest. The digests below were taken from public Dockerfiles
# that pin the same tags; refresh them with
#   docker buildx imagetools inspect <image:tag> --format '{{json .Manifest.Digest}}'
# The CUDA image is Ubuntu 24.04 too, so a virtualenv built on BASE_IMAGE finds the same
# /usr/bin/python3 (3.12) in it.
ARG BASE_IMAGE=ubuntu:24.04@sha256:84e77dee7d1bc93fb029a45e3c6cb9d8aa4831ccfcc7103d36e876938d28895b
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04@sha256:8aef630a54bc5c5146ae5ce68e6af5caa3df0fb690bb91544175c91f307e4356
# Where the trainer's torch comes from: the CUDA 12.6 wheels (the base image's CUDA).
ARG TRAINER_TORCH_INDEX=https://download.pytorch.org/whl/cu126

# ------------------------------------------------------------------------------ builder
FROM ${BASE_IMAGE} AS builder
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A throw-away virtualenv for the build front end (Ubuntu's own Python is externally managed).
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common/ common/
COPY operator/ operator/
COPY trainer/ trainer/
RUN /opt/build/bin/python -m pip wheel --no-deps . -w /wheels

# ------------------------------------------------------------------------ virtualenvs
# Built at /opt/stylegan, the path they keep in the final images (a virtualenv's scripts
# name their interpreter by absolute path).
FROM builder AS venv-operator
RUN python3 -m venv /opt/stylegan \
 && /opt/stylegan/bin/pip install /wheels/stylegan_operator-*.whl \
 && /opt/stylegan/bin/pip uninstall -y pip

FROM builder AS venv-trainer
ARG TRAINER_TORCH_INDEX
RUN python3 -m venv /opt/stylegan \
 && /opt/stylegan/bin/pip install --index-url "${TRAINER_TORCH_INDEX}" torch \
 && /opt/stylegan/bin/pip install "$(echo /wheels/stylegan_operator-*.whl)[trainer,plot]" \
 && /opt/stylegan/bin/pip uninstall -y pip

# ---------------------------------------------------------------------------- operator
FROM ${BASE_IMAGE} AS operator
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu's images ship a user "ubuntu" with uid 1000; the images' own user takes that uid.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --gid 1000 stylegan \
 && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin stylegan
COPY --from=venv-operator /opt/stylegan /opt/stylegan
ENV PATH=/opt/stylegan/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 1000:1000
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["stylegan"]
CMD ["operator", "--all-namespaces"]

# ----------------------------------------------------------------------------- trainer
FROM ${CUDA_IMAGE} AS trainer
ENV DEBIAN_FRONTEND=noninteractive
# As above: uid 1000 becomes the images' user "stylegan".
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --gid 1000 stylegan \
 && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin stylegan
COPY --from=venv-trainer /opt/stylegan /opt/stylegan
# The operator's Jobs run `stylegan torchrun ... --no-python stylegan train --config ...`
# (the launcher keeps the workers' exit codes 64 and 75, which torchrun turns into 1, and
# runs torchrun with its own python); stylegan, torchrun and python live in the venv's bin.
ENV PATH=/opt/stylegan/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["stylegan"]
CMD ["train", "--help"]
