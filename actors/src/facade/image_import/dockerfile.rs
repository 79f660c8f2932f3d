//! The Dockerfile the original's `POST /image/import` hands to its importer image (base64 in
//! `BUILD_SCRIPT`): its Jinja `DOCKERFILE_TEMPLATE` rendered byte for byte, so an importer built
//! for the original builds the same image from our request.

use crate::compat::binary_size;

/// The environment variables the image's `ai.backend.envs.corecount` label names (the original
/// renders this fixed list whatever `CPUCountEnvs` says).
const CPU_COUNT_ENVS: [&str; 3] = ["NPROC", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"];

/// One `ai.backend.service-ports` entry: `name:protocol:port` or `name:protocol:[p1,p2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: String,
    pub ports: Vec<u16>,
}

/// What the template is rendered from, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileSpec {
    /// The source image exactly as the request gave it.
    pub src: String,
    pub brand: String,
    pub base_distro: String,
    pub min_cpu: i64,
    pub min_memory_bytes: u64,
    pub preferred_shmem_bytes: u64,
    pub accelerators: Vec<String>,
    /// An absolute, normalized path (`/usr/local/bin/python`).
    pub runtime_path: String,
    pub service_ports: Vec<ServicePort>,
}

/// `PurePosixPath(path).parent.parent` of an absolute, normalized path.
fn grandparent(path: &str) -> &str {
    let parent = |p: &str| -> usize { p.rfind('/').unwrap_or(0) };
    match parent(path) {
        0 => "/",
        end => match parent(&path[..end]) {
            0 => "/",
            end2 => &path[..end2],
        },
    }
}

fn service_ports_label(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|port| {
            let numbers = if port.ports.len() > 1 {
                let list: Vec<String> = port.ports.iter().map(u16::to_string).collect();
                format!("[{}]", list.join(","))
            } else {
                port.ports.first().map(u16::to_string).unwrap_or_default()
            };
            format!("{}:{}:{numbers}", port.name, port.protocol)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The rendered Dockerfile (no trailing newline, as Jinja renders it).
pub fn render(spec: &DockerfileSpec) -> String {
    let runtime = &spec.runtime_path;
    let mut text = format!(
        "# syntax = docker/dockerfile:1.0-experimental\n\
         FROM {src}\n\
         MAINTAINER Backend.AI Manager\n\
         \n\
         USER root\n\
         \n",
        src = spec.src
    );
    // The only runtime type there is: `python`.
    text.push_str(&format!(
        "ENV PYTHONUNBUFFERED=1 \\\n    LANG=C.UTF-8\n\n\
         RUN --mount=type=bind,source=wheelhouse,target=/root/wheelhouse \\\n    \
         PIP_OPTS=\"--no-cache-dir --no-index --find-links=/root/wheelhouse\" && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} -U pip setuptools && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} Pillow && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} h5py && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} ipython && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} jupyter && \\\n    \
         {runtime} -m pip install ${{PIP_OPTS}} jupyterlab\n\n\
         # Install ipython kernelspec\n\
         RUN {runtime} -m ipykernel install \\\n    \
         --prefix={prefix} \\\n    \
         --display-name \"{brand} on Backend.AI\"\n\n",
        prefix = grandparent(runtime),
        brand = spec.brand,
    ));
    text.push_str(&format!(
        "LABEL ai.backend.kernelspec=\"1\" \\\n      \
         ai.backend.envs.corecount=\"{envs}\" \\\n      \
         ai.backend.features=\"query batch uid-match\" \\\n      \
         ai.backend.resource.min.cpu=\"{cpu}\" \\\n      \
         ai.backend.resource.min.mem=\"{mem}\" \\\n      \
         ai.backend.resource.preferred.shmem=\"{shmem}\" \\\n      \
         ai.backend.accelerators=\"{accelerators}\" \\",
        envs = CPU_COUNT_ENVS.join(","),
        cpu = spec.min_cpu,
        mem = binary_size::python_str(spec.min_memory_bytes),
        shmem = binary_size::python_str(spec.preferred_shmem_bytes),
        accelerators = spec.accelerators.join(","),
    ));
    if spec.accelerators.iter().any(|a| a == "cuda") {
        text.push_str(
            "\n      ai.backend.resource.min.cuda.device=1 \\\
             \n      ai.backend.resource.min.cuda.shares=0.1 \\",
        );
    }
    text.push_str(&format!(
        "\n      ai.backend.base-distro=\"{}\" \\",
        spec.base_distro
    ));
    if !spec.service_ports.is_empty() {
        text.push_str(&format!(
            "\n      ai.backend.service-ports=\"{}\" \\",
            service_ports_label(&spec.service_ports)
        ));
    }
    text.push_str(&format!(
        "\n      ai.backend.runtime-type=\"python\" \\\
         \n      ai.backend.runtime-path=\"{runtime}\""
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both expected files were rendered by `jinja2.Template(DOCKERFILE_TEMPLATE).render(...)`
    /// from the original's `manager/api/image.py` with `BinarySize` values, as it renders them.
    #[test]
    fn renders_as_the_originals_template() {
        let tensorflow = DockerfileSpec {
            src: "index.docker.io/lablup/tensorflow:2.0-source".into(),
            brand: "TensorFlow 2.0".into(),
            base_distro: "ubuntu".into(),
            min_cpu: 2,
            min_memory_bytes: 64 << 20,
            preferred_shmem_bytes: 3 << 29,
            accelerators: vec!["cuda".into()],
            runtime_path: "/usr/local/bin/python".into(),
            service_ports: vec![
                ServicePort {
                    name: "jupyter".into(),
                    protocol: "http".into(),
                    ports: vec![8080],
                },
                ServicePort {
                    name: "multi".into(),
                    protocol: "tcp".into(),
                    ports: vec![9000, 9001],
                },
            ],
        };
        assert_eq!(
            render(&tensorflow),
            include_str!("testdata/ubuntu-cuda.dockerfile")
        );
        let plain = DockerfileSpec {
            src: "r.example.com/x/y:1".into(),
            brand: "Y".into(),
            base_distro: "centos".into(),
            min_cpu: 1,
            min_memory_bytes: 2 << 30,
            preferred_shmem_bytes: 64 << 20,
            accelerators: vec![],
            runtime_path: "/opt/conda/bin/python3".into(),
            service_ports: vec![],
        };
        assert_eq!(
            render(&plain),
            include_str!("testdata/centos-plain.dockerfile")
        );
    }

    #[test]
    fn the_prefix_is_the_runtimes_grandparent() {
        assert_eq!(grandparent("/usr/local/bin/python"), "/usr/local");
        assert_eq!(grandparent("/bin/python"), "/");
        assert_eq!(grandparent("/python"), "/");
    }
}
