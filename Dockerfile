# bids_eeg2fmri BIDS-App image (see docs/containers.md).
#
#   docker build -t bids_eeg2fmri .                       # torch from PyPI (CUDA-capable)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t bids_eeg2fmri .
#   buildah bud --build-context wheels=/opt/wheels --build-arg TORCH_VERSION=2.13.0+cpu \
#       -t bids_eeg2fmri .                                # a local CPU wheel (docker: same flags)
#
# Hosts that intercept TLS give pip their CA bundle as a build secret, which exists only while
# the pip steps run and never enters a layer: `--secret id=host_ca,src=/etc/ssl/certs/ca-certificates.crt`.
#
# One stage on purpose: a build stage plus `COPY --from` of the 2 GB venv doubled the build's
# disk and CPU work (tar, digest, delete) for < 20 MB saved; pip's cache is off (PIP_NO_CACHE_DIR)
# and the build-only inputs below are mounts, so nothing but the venv is left behind.

# Local wheels for the build, empty by default. `--build-context wheels=DIR` replaces this stage
# with a host folder that the torch step mounts (read-only, not copied into any layer).
FROM scratch AS wheels

FROM debian:bookworm-slim

# bookworm's python3 is 3.11 (the project needs >= 3.11); pinning the minor version makes a base
# with another Python fail here, not at run time. libgomp1: OpenMP, which torch/scikit-learn/ANTs
# builds may take from the system; the wheels bundle every other library. The user is fixed
# (uid 1000) but any uid works (`docker run -u`): nothing in the image needs an owner.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3=3.11.* python3-venv=3.11.* libgomp1=12.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 bids \
    && useradd --uid 1000 --gid bids --no-create-home --home-dir /tmp --shell /usr/sbin/nologin bids

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180

# torch first and on its own: it is the largest download and decides CPU vs CUDA; the project's
# `torch>=2.2` is then already satisfied and kept. Default: PyPI's normal (CUDA-capable) wheel.
# TORCH_INDEX_URL picks another index (e.g. PyTorch's CPU-only one); a wheel in the `wheels`
# context wins when TORCH_VERSION names it exactly (e.g. 2.13.0+cpu).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""
RUN --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=host_ca,target=/run/host-ca.crt \
    if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && if [ -n "$TORCH_INDEX_URL" ]; then export PIP_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && python3 -m venv "$VIRTUAL_ENV" \
    && pip install --find-links /wheels "torch==${TORCH_VERSION}"

# Dependencies before the source, so a code change rebuilds only the small last layer (with a
# layer cache). The requirement list is read from pyproject.toml: it has one source. Versions come
# from requirements.lock (`make lock`), used as constraints: the image gets exactly the tested
# versions of what the project needs, and none of the lock's test-only packages.
COPY pyproject.toml README.md requirements.lock /src/
RUN --mount=type=secret,id=host_ca,target=/run/host-ca.crt \
    if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -c /src/requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# A regular (not editable) install; the source copy is removed again. pip byte-compiles all it
# installs (no --no-compile): the root file system is read-only at run time.
COPY bids_eeg2fmri /src/bids_eeg2fmri
RUN --mount=type=secret,id=host_ca,target=/run/host-ca.crt \
    if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && pip install --no-deps /src \
    && rm -rf /src \
    && bids-eeg2fmri --version

# Last, so that a new version or date does not invalidate the layers above.
ARG VERSION=unknown
ARG IMAGE=bids_eeg2fmri:${VERSION}
ARG BUILD_DATE=""
ARG VCS_REF=""
LABEL org.opencontainers.image.title="bids_eeg2fmri" \
      org.opencontainers.image.description="BIDS-App: preprocess simultaneous EEG-fMRI and train models translating between EEG and fMRI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="https://github.com/bids-eeg2fmri/bids_eeg2fmri" \
      org.opencontainers.image.url="https://github.com/bids-eeg2fmri/bids_eeg2fmri" \
      org.opencontainers.image.documentation="https://github.com/bids-eeg2fmri/bids_eeg2fmri/blob/main/docs/containers.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="bids_eeg2fmri developers" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# Every place a library writes to by default (HOME, caches, configs) points into /tmp, the only
# writable place under `--read-only` (a tmpfs there), and which Apptainer binds from the host.
ENV HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    MPLCONFIGDIR=/tmp/.config/matplotlib \
    MPLBACKEND=Agg \
    NUMBA_CACHE_DIR=/tmp/.cache/numba \
    DENO_DIR=/tmp/.cache/deno \
    NILEARN_DATA=/tmp/.cache/nilearn_data \
    MNE_DONTWRITE_HOME=true \
    NIPYPE_NO_ET=1 \
    BIDS_EEG2FMRI_CACHE=/tmp/.cache/bids_eeg2fmri \
    BIDS_EEG2FMRI_CONTAINER=docker \
    BIDS_EEG2FMRI_IMAGE=${IMAGE} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["bids-eeg2fmri"]
CMD ["--help"]
