//! The `create_kernels` arguments: one kernel config per kernel, the cluster info, and the
//! ImageRef map (UUID ext 1 → ImageRef ext 7), shaped as the 26.x manager sends them.
//!
//! Enum-valued keys are sent as plain strings (the agent accepts them, and we send no Python
//! objects besides the ImageRefs it insists on).

use std::collections::BTreeMap;

use bai_schema::ResourceSlot;
use uuid::Uuid;

use super::image_ref::ImageRef;
use crate::wire::Value;

/// The image of a kernel, from the `images` row and its registry.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    pub canonical: String,
    pub registry_name: String,
    pub registry_url: String,
    pub project: Option<String>,
    pub architecture: String,
    pub digest: String,
    pub labels: BTreeMap<String, String>,
    pub is_local: bool,
}

impl ImageSpec {
    pub fn image_ref(&self) -> ImageRef {
        ImageRef::from_canonical(
            &self.canonical,
            &self.registry_name,
            self.project.as_deref(),
            &self.architecture,
            self.is_local,
        )
    }
}

/// Everything the agent needs to start one kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelLaunch {
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    /// Session type value: `interactive`, `batch`, `inference`, `system`.
    pub session_type: String,
    /// `single-node` / `multi-node`.
    pub cluster_mode: String,
    pub cluster_role: String,
    pub cluster_idx: i32,
    pub local_rank: i32,
    pub cluster_hostname: String,
    pub image: ImageSpec,
    pub resource_slots: ResourceSlot,
    pub resource_opts: serde_json::Value,
    pub environ: BTreeMap<String, String>,
    pub mounts: Vec<serde_json::Value>,
    pub bootstrap_script: Option<String>,
    pub startup_command: Option<String>,
    pub internal_data: Option<serde_json::Value>,
    pub preopen_ports: Vec<i64>,
    pub idle_timeout: i64,
    pub owner_user_id: Uuid,
    pub owner_project_id: Option<Uuid>,
    pub network_id: String,
    pub agent_addr: String,
    pub scaling_group: String,
    /// etcd `config/docker/image/auto_pull`: `digest`, `tag` or `none`.
    pub auto_pull: String,
}

fn str_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (Value::str(k.clone()), Value::str(v.clone())))
            .collect(),
    )
}

fn opt_str(text: &Option<String>) -> Value {
    text.as_ref().map_or(Value::Nil, |t| Value::str(t.clone()))
}

/// The kernel config map for one kernel.
pub fn kernel_config(launch: &KernelLaunch) -> Value {
    let image = &launch.image;
    let image_config = Value::map_of([
        ("canonical", Value::str(image.canonical.clone())),
        ("project", opt_str(&image.project)),
        ("architecture", Value::str(image.architecture.clone())),
        ("digest", Value::str(image.digest.clone())),
        ("repo_digest", Value::Nil),
        (
            "registry",
            Value::map_of([
                ("name", Value::str(image.registry_name.clone())),
                ("url", Value::str(image.registry_url.clone())),
                ("username", Value::Nil),
                ("password", Value::Nil),
            ]),
        ),
        ("labels", str_map(&image.labels)),
        ("is_local", Value::Bool(image.is_local)),
        ("auto_pull", Value::str(launch.auto_pull.clone())),
    ]);
    let ints = |items: &[i64]| Value::Array(items.iter().map(|n| Value::Int(*n)).collect());
    Value::map_of([
        ("image", image_config),
        ("kernel_id", Value::str(launch.kernel_id.to_string())),
        ("session_id", Value::str(launch.session_id.to_string())),
        (
            "owner_user_id",
            Value::str(launch.owner_user_id.to_string()),
        ),
        (
            "owner_project_id",
            launch
                .owner_project_id
                .map_or(Value::Nil, |id| Value::str(id.to_string())),
        ),
        ("network_id", Value::str(launch.network_id.clone())),
        ("session_type", Value::str(launch.session_type.clone())),
        ("cluster_mode", Value::str(launch.cluster_mode.clone())),
        ("cluster_role", Value::str(launch.cluster_role.clone())),
        ("cluster_idx", Value::Int(i64::from(launch.cluster_idx))),
        (
            "cluster_hostname",
            Value::str(launch.cluster_hostname.clone()),
        ),
        ("local_rank", Value::Int(i64::from(launch.local_rank))),
        ("uid", Value::Nil),
        ("main_gid", Value::Nil),
        ("supplementary_gids", Value::Array(Vec::new())),
        (
            "resource_slots",
            Value::Map(
                launch
                    .resource_slots
                    .iter()
                    .map(|(slot, amount)| (Value::str(slot), Value::str(amount.to_string())))
                    .collect(),
            ),
        ),
        ("resource_opts", Value::from_json(&launch.resource_opts)),
        ("environ", str_map(&launch.environ)),
        (
            "mounts",
            Value::Array(launch.mounts.iter().map(Value::from_json).collect()),
        ),
        ("package_directory", Value::Array(Vec::new())),
        ("idle_timeout", Value::Int(launch.idle_timeout)),
        ("bootstrap_script", opt_str(&launch.bootstrap_script)),
        ("startup_command", opt_str(&launch.startup_command)),
        (
            "internal_data",
            launch
                .internal_data
                .as_ref()
                .map_or(Value::Nil, Value::from_json),
        ),
        ("auto_pull", Value::str(launch.auto_pull.clone())),
        ("preopen_ports", ints(&launch.preopen_ports)),
        ("allocated_host_ports", Value::Array(Vec::new())),
        ("agent_addr", Value::str(launch.agent_addr.clone())),
        ("scaling_group", Value::str(launch.scaling_group.clone())),
        ("endpoint_id", Value::Nil),
    ])
}

/// `cluster_info` for the kernels of a session on one agent.
pub fn cluster_info(
    cluster_mode: &str,
    cluster_size: usize,
    replicas: &BTreeMap<String, usize>,
    network_name: &str,
) -> Value {
    Value::map_of([
        ("mode", Value::str(cluster_mode)),
        ("size", Value::Int(cluster_size as i64)),
        (
            "replicas",
            Value::Map(
                replicas
                    .iter()
                    .map(|(role, n)| (Value::str(role.clone()), Value::Int(*n as i64)))
                    .collect(),
            ),
        ),
        (
            "network_config",
            Value::map_of([
                ("mode", Value::str("bridge")),
                ("network_name", Value::str(network_name)),
            ]),
        ),
        ("ssh_keypair", Value::Nil),
        ("cluster_ssh_port_mapping", Value::Nil),
        // 22.09/23.09 agents read the network from here (26.x from `network_config`).
        ("network_name", Value::str(network_name)),
    ])
}

/// `{UUID(kernel_id): ImageRef}` with ext-1 keys and ext-7 values.
pub fn image_refs(launches: &[KernelLaunch]) -> Value {
    Value::Map(
        launches
            .iter()
            .map(|launch| {
                (
                    Value::uuid(launch.kernel_id),
                    launch.image.image_ref().to_ext(),
                )
            })
            .collect(),
    )
}
