//! `/image/import`: the form a UI shows to import a Docker image as a Backend.AI image
//! (`GET`), with the caller's groups and scaling groups as choices. Running the import (`POST`,
//! a batch session that builds the image) needs the scheduler and is not offered yet.

use actix_web::{HttpResponse, web};
use bai_schema::queries::group::active_group_names;
use bai_schema::queries::scaling_group::{GroupRef, allowed_scaling_groups};
use serde_json::{Value, json};

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

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

/// `POST /image/import`: building an image runs a batch session on an agent.
async fn import_image(_caller: Authenticated) -> Result<HttpResponse, Problem> {
    Err(Problem::new(ProblemKind::QueryNotImplemented)
        .with_msg("importing an image runs a build session, which this manager does not offer yet"))
}
