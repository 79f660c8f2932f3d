# syntax = docker/dockerfile:1.0-experimental
FROM r.example.com/x/y:1
MAINTAINER Backend.AI Manager

USER root

ENV PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

RUN --mount=type=bind,source=wheelhouse,target=/root/wheelhouse \
    PIP_OPTS="--no-cache-dir --no-index --find-links=/root/wheelhouse" && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} -U pip setuptools && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} Pillow && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} h5py && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} ipython && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} jupyter && \
    /opt/conda/bin/python3 -m pip install ${PIP_OPTS} jupyterlab

# Install ipython kernelspec
RUN /opt/conda/bin/python3 -m ipykernel install \
    --prefix=/opt/conda \
    --display-name "Y on Backend.AI"

LABEL ai.backend.kernelspec="1" \
      ai.backend.envs.corecount="NPROC,OMP_NUM_THREADS,OPENBLAS_NUM_THREADS" \
      ai.backend.features="query batch uid-match" \
      ai.backend.resource.min.cpu="1" \
      ai.backend.resource.min.mem="2 GiB" \
      ai.backend.resource.preferred.shmem="64 MiB" \
      ai.backend.accelerators="" \
      ai.backend.base-distro="centos" \
      ai.backend.runtime-type="python" \
      ai.backend.runtime-path="/opt/conda/bin/python3"