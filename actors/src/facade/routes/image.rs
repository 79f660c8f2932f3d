//! `/image/import`: the form a UI shows to import a Docker image as a Backend.AI image
//! (`GET`), with the caller's groups and scaling groups as choices, and the import itself
//! (`POST`), a batch session of the importer image (see `facade::image_import`).

use actix_web::{HttpResponse, web};
use bai_schema::image_ref::ImageRef;
use bai_schema::queries::group::active_group_names;
use bai_schema::queries::image::domain_allowed_registries;
use bai_schema::queries::scaling_group::{GroupRef, allowed_scaling_groups};
use serde_json::{Value, json};

use crate::etcd::keys::quote;
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::image_import::request::parse_import_request;
use crate::facade::image_import::{self, RegistryLogin};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::session::create::{Creation, CreationExtras, create_session};
use crate::facade::routes::{db_client, etcd_failed, query_failed};
use crate::facade::session::control::SessionQueue;
use crate::facade::state::AppState;
use crate::storage::StorageBroker;

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/image/import")
            .route(
                web::get()
                    .to(import_form)
                    .wrap(Access::admin().read_allowed()),
            )
            .route(
                web::post()
                    .to(import_image)
                    .wrap(Access::admin().all_allowed()),
            ),
    );
}

/// The fixed part of the form: the image options.
fn import_options() -> Value {
    json!({
        "name": "Import options",
        "fields": [
            {"name": "src", "type": "string", "label": "Source Docker image",
             "placeholder": "index.docker.io/lablup/tensorflow:2.0-source",
             "help": "The full Docker image name to import from. The registry must be accessible by the client."},
            {"name": "target", "type": "string", "label": "Target Docker image",
             "placeholder": "index.docker.io/lablup/tensorflow:2.0-target",
             "help": "The full Docker image name of the imported image.The registry must be accessible by the client."},
            {"name": "brand", "type": "string", "label": "Name of Jupyter kernel",
             "placeholder": "TensorFlow 2.0",
             "help": "The name of kernel to be shown in the Jupyter's kernel menu. This will be suffixed with \"on Backend.AI\"."},
            {"name": "baseDistro", "type": "choice", "choices": ["ubuntu", "centos"],
             "default": "ubuntu", "label": "Base LINUX distribution",
             "help": "The base Linux distribution used by the source image"},
            {"name": "minCPU", "type": "number", "min": 1, "max": null,
             "label": "Minimum required CPU core(s)",
             "help": "The minimum number of CPU cores required by the image"},
            {"name": "minMemory", "type": "binarysize", "min": "64m", "max": null,
             "label": "Minimum required memory size",
             "help": "The minimum size of the main memory required by the image"},
            {"name": "preferredSharedMemory", "type": "binarysize", "min": "64m", "max": null,
             "label": "Preferred shared memory size",
             "help": "The preferred (default) size of the shared memory"},
            {"name": "supportedAccelerators", "type": "multichoice[str]", "choices": ["cuda"],
             "default": "cuda", "label": "Supported accelerators",
             "help": "The list of accelerators supported by the image"},
            {"name": "runtimeType", "type": "choice", "choices": ["python"], "default": "python",
             "label": "Runtime type of the image",
             "help": "The runtime type of the image. Currently, the source image must have installed Python 2.7, 3.5, 3.6, or 3.7 at least to import. This will be used as the kernel of Jupyter service in this image."},
            {"name": "runtimePath", "type": "string", "default": "/usr/local/bin/python",
             "label": "Path of the runtime", "placeholder": "/usr/local/bin/python",
             "help": "The path to the main executalbe of runtime language of the image. Even for the same \"python\"-based images, this may differ significantly image by image. (e.g., /usr/bin/python, /usr/local/bin/python, /opt/something/bin/python, ...) Please check this carefully not to get confused with OS-default ones and custom-installed ones."},
            {"name": "CPUCountEnvs", "type": "list[string]",
             "default": ["NPROC", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"],
             "label": "CPU count environment variables",
             "help": "The name of environment variables to be overriden to the number of CPU cores actually allocated to the container. Required for legacy computation libraries."},
            {"name": "servicePorts", "type": "multichoice[template]",
             "templates": [
                 {"name": "jupyter", "protocol": "http", "ports": [8080]},
                 {"name": "jupyterlab", "protocol": "http", "ports": [8090]},
                 {"name": "tensorboard", "protocol": "http", "ports": [6006]},
                 {"name": "digits", "protocol": "http", "ports": [5000]},
                 {"name": "vscode", "protocol": "http", "ports": [8180]},
                 {"name": "h2o-dai", "protocol": "http", "ports": [12345]}
             ],
             "label": "Supported service ports",
             "help": "The list of service ports supported by this image. Note that sshd (port 2200) and ttyd (port 7681) are intrinsic; they are always included regardless of the source image. The port number 2000-2003 are reserved by Backend.AI, and all port numbers must be larger than 1024 and smaller than 65535."}
        ]
    })
}

/// `GET /image/import`.
async fn import_form(
    caller: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let client = db_client(&state).await?;
    let groups = active_group_names(&client, caller.domain_name())
        .await
        .map_err(query_failed(&state, "listing the domain's groups"))?;
    // As the original, only the domain's and the keypair's scaling groups are offered.
    let scaling_groups: Vec<String> = allowed_scaling_groups(
        &client,
        caller.domain_name(),
        &GroupRef::Name(String::new()),
        &caller.access_key,
    )
    .await
    .map_err(query_failed(&state, "listing the allowed scaling groups"))?
    .into_iter()
    .map(|group| group.name)
    .collect();
    Ok(reply::json(&json!({
        "fieldGroups": [
            import_options(),
            {
                "name": "Import Task Options",
                "help": "The import task uses 1 CPU core and 2 GiB of memory.",
                "fields": [
                    {"name": "group", "type": "choice", "choices": groups,
                     "label": "Group to build image",
                     "help": "The user group where the import task will be executed."},
                    {"name": "scalingGroup", "type": "choice", "choices": scaling_groups,
                     "label": "Scaling group to build image",
                     "help": "The scaling group where the import task will take resources from."}
                ]
            }
        ]
    })))
}

/// The login etcd keeps for `registry` (`config/docker/registry/{quoted registry}`).
async fn registry_login(state: &AppState, registry: &str) -> Result<RegistryLogin, Problem> {
    let section = state
        .etcd
        .get_prefix(&format!("config/docker/registry/{}", quote(registry)))
        .await
        .map_err(etcd_failed(state, "reading the registry's login"))?;
    let text = |key: &str| section.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(RegistryLogin {
        username: text("username"),
        password: text("password"),
    })
}

/// `POST /image/import`: enqueues the import's batch session and answers
/// `{"importTask": {"sessionId": <session name>, "taskId": <its kernel>}}`, as the original.
async fn import_image(
    caller: Authenticated,
    params: ApiParams,
    version: ApiVersion,
    state: web::Data<AppState>,
    storage: Option<web::Data<StorageBroker>>,
    queue: Option<web::Data<SessionQueue>>,
) -> Result<HttpResponse, Problem> {
    let request = parse_import_request(&params)?;
    let client = db_client(&state).await?;
    let allowed = domain_allowed_registries(&client, caller.domain_name())
        .await
        .map_err(query_failed(&state, "reading the domain's registries"))?
        .unwrap_or_default();
    drop(client);
    let src = ImageRef::parse_known(&request.src, &allowed)
        .map_err(|error| invalid_param("src", error.to_string()))?;
    let target = ImageRef::parse_known(&request.target, &allowed)
        .map_err(|error| invalid_param("target", error.to_string()))?;
    let importer =
        ImageRef::parse_known(&state.settings.importer_image, &allowed).map_err(|error| {
            Problem::new(ProblemKind::ServerMisconfigured)
                .with_msg(format!("[manager] importer-image: {error}"))
        })?;
    let mut logins = Vec::new();
    for registry in [&src.registry, &target.registry] {
        if !logins.iter().any(|(known, _)| known == registry) {
            logins.push((registry.clone(), registry_login(&state, registry).await?));
        }
    }
    let session_name = image_import::new_session_name();
    let session = image_import::session_params(
        &request,
        &session_name,
        &importer.canonical(),
        caller.domain_name(),
        &src.canonical(),
        &target.canonical(),
    );
    // As the original's import kernel: no bootstrap script, no dotfiles.
    let extras = CreationExtras {
        internal_data: image_import::internal_data(&logins),
        without_user_setup: true,
    };
    let params = ApiParams::from_object(session);
    match create_session(caller, params, version, state, storage, queue, extras).await? {
        Creation::New { main_kernel_id, .. } => Ok(reply::json(&json!({
            "importTask": {"sessionId": session_name, "taskId": main_kernel_id.to_string()},
        }))),
        Creation::Existing(response) => Ok(response),
    }
}
