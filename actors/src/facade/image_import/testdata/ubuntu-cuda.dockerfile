# syntax = docker/dockerfile:1.0-experimental
FROM index.docker.io/lablup/tensorflow:2.0-source
MAINTAINER Backend.AI Manager

USER root

ENV PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

RUN --mount=type=bind,source=wheelhouse,target=/root/wheelhouse \
    PIP_OPTS="--no-cache-dir --no-index --find-links=/root/wheelhouse" && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} -U pip setuptools && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} Pillow && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} h5py && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} ipython && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} jupyter && \
    /usr/local/bin/python -m pip install ${PIP_OPTS} jupyterlab

# Install ipython kernelspec
RUN /usr/local/bin/python -m ipykernel install \
    --prefix=/usr/local \
    --display-name "TensorFlow 2.0 on Backend.AI"

LABEL ai.backend.kernelspec="1" \
      ai.backend.envs.corecount="NPROC,OMP_NUM_THREADS,OPENBLAS_NUM_THREADS" \
      ai.backend.features="query batch uid-match" \
      ai.backend.resource.min.cpu="2" \
      ai.backend.resource.min.mem="64 MiB" \
      ai.backend.resource.preferred.shmem="1.5 GiB" \
      ai.backend.accelerators="cuda" \
      ai.backend.resource.min.cuda.device=1 \
      ai.backend.resource.min.cuda.shares=0.1 \
      ai.backend.base-distro="ubuntu" \
      ai.backend.service-ports="jupyter:http:8080,multi:tcp:[9000,9001]" \
      ai.backend.runtime-type="python" \
      ai.backend.runtime-path="/usr/local/bin/python"