//! Superadmin mutations of agents and the image catalogue: `modify_agent` (the `schedulable`
//! flag), `modify_image` (the columns of one image) and `clear_images` (every image of a
//! registry), as the original's `ModifyAgent`, `ModifyImage` and `ClearImages`. Image edits go
//! through the registry-sync actor, which owns the catalogue.

use async_graphql::{Context, InputObject, Object};
use bai_schema::image_admin::ImageChanges;
use bai_schema::queries::agent_admin::{
    agent_endpoint, set_agent_scaling_group, set_agent_schedulable,
};
use serde_json::{Map, Value as Json, json};

use super::image::{DEFAULT_IMAGE_ARCH, catalog_failure, mailbox_failure, registry_sync};
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use crate::agent_rpc::{AgentMethod, AgentTarget, RpcError};
use crate::registry_sync::{ClearImages as ClearMessage, ModifyImage as ModifyMessage};

mutation_payload!(ModifyAgent, "ModifyAgent");
mutation_payload!(ModifyImage, "ModifyImage");
mutation_payload!(ClearImages, "ClearImages");

/// The original's `ModifyAgentInput`.
#[derive(InputObject, Debug)]
#[graphql(name = "ModifyAgentInput", rename_fields = "snake_case")]
pub struct ModifyAgentInput {
    pub schedulable: Option<bool>,
    pub scaling_group: Option<String>,
}

/// A label of an image (`KVPairInput`).
#[derive(InputObject, Debug)]
#[graphql(name = "KVPairInput", rename_fields = "snake_case")]
pub struct KvPairInput {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// A resource limit of an image (`ResourceLimitInput`).
#[derive(InputObject, Debug)]
#[graphql(name = "ResourceLimitInput", rename_fields = "snake_case")]
pub struct ResourceLimitInput {
    pub key: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// The original's `ModifyImageInput`.
#[derive(InputObject, Debug, Default)]
#[graphql(name = "ModifyImageInput", rename_fields = "snake_case")]
pub struct ModifyImageInput {
    pub name: Option<String>,
    pub registry: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: Option<String>,
    pub size_bytes: Option<i64>,
    #[graphql(name = "type")]
    pub image_type: Option<String>,
    pub digest: Option<String>,
    pub labels: Option<Vec<KvPairInput>>,
    pub supported_accelerators: Option<Vec<String>>,
    pub resource_limits: Option<Vec<ResourceLimitInput>>,
}

/// Why `modify_image`'s input is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageInputError {
    #[error("type must be COMPUTE, SYSTEM or SERVICE, not {0:?}")]
    UnknownType(String),
}

/// The column changes of `props`, as the original's `set_if_set` calls build them.
pub fn image_changes(props: ModifyImageInput) -> Result<ImageChanges, ImageInputError> {
    if let Some(kind) = &props.image_type
        && !matches!(kind.as_str(), "COMPUTE" | "SYSTEM" | "SERVICE")
    {
        return Err(ImageInputError::UnknownType(kind.clone()));
    }
    let labels = props.labels.map(|pairs| {
        let mut map = Map::new();
        for pair in pairs {
            if let Some(key) = pair.key {
                map.insert(key, pair.value.map_or(Json::Null, Json::String));
            }
        }
        Json::Object(map)
    });
    let resources = props.resource_limits.map(|limits| {
        let mut map = Map::new();
        for limit in limits {
            let Some(key) = limit.key else { continue };
            let mut entry = Map::new();
            if let Some(min) = limit.min.filter(|m| !m.is_empty()) {
                entry.insert("min".into(), json!(min));
            }
            if let Some(max) = limit.max.filter(|m| !m.is_empty()) {
                entry.insert("max".into(), json!(max));
            }
            map.insert(key, Json::Object(entry));
        }
        Json::Object(map)
    });
    Ok(ImageChanges {
        name: props.name,
        registry: props.registry,
        image: props.image,
        tag: props.tag,
        architecture: props.architecture,
        size_bytes: props.size_bytes,
        image_type: props.image_type,
        config_digest: props.digest,
        accelerators: props.supported_accelerators.map(|list| list.join(",")),
        labels,
        resources,
    })
}

type Step = Result<Outcome<()>, Outcome<()>>;

/// How long `modify_agent` waits for the agent to take its new scaling group.
const UPDATE_SCALING_GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn modify_agent(ctx: &Context<'_>, id: String, props: ModifyAgentInput) -> Step {
    let (request, client) =
        mutation::begin(ctx, "modify_agent", MutationRoles::SuperadminOnly).await?;
    let unexpected =
        |e: bai_schema::queries::QueryError| Outcome::failure(format!("unexpected error: {e}"));
    if let Some(scaling_group) = &props.scaling_group {
        // As the original, the agent is told first (it rewrites its own configuration, so its
        // next heartbeat reports the new group), then the row changes.
        let endpoint = agent_endpoint(&client, &id)
            .await
            .map_err(unexpected)?
            .ok_or_else(|| Outcome::no_match("ModifyAgent"))?;
        let rpc = request.agent_rpc.as_ref().ok_or_else(|| {
            Outcome::failure("cannot change the scaling group: this worker has no agent RPC client")
        })?;
        let target = AgentTarget {
            id: id.clone(),
            addr: endpoint.addr,
            version: endpoint.version,
        };
        rpc.call(
            &target,
            AgentMethod::UpdateScalingGroup,
            vec![crate::wire::Value::str(scaling_group)],
            Vec::new(),
            Some(UPDATE_SCALING_GROUP_TIMEOUT),
        )
        .await
        .map_err(|e| match e {
            // Newer agents read their scaling group only from agent.toml; a row change
            // alone would be undone by the next heartbeat.
            RpcError::NotExposed { version, .. } => Outcome::failure(format!(
                "agent {id} ({version}) cannot change its scaling group remotely: set \
                 scaling-group in its agent.toml and restart it"
            )),
            other => Outcome::failure(format!("unexpected error: {other}")),
        })?;
        if !set_agent_scaling_group(&client, &id, scaling_group)
            .await
            .map_err(unexpected)?
        {
            return Err(Outcome::no_match("ModifyAgent"));
        }
    }
    let Some(schedulable) = props.schedulable else {
        return Ok(Outcome::success(None));
    };
    let found = set_agent_schedulable(&client, &id, schedulable)
        .await
        .map_err(unexpected)?;
    if !found {
        return Err(Outcome::no_match("ModifyAgent"));
    }
    Ok(Outcome::success(None))
}

async fn modify_image(
    ctx: &Context<'_>,
    target: String,
    architecture: String,
    props: ModifyImageInput,
) -> Step {
    let (request, _client) =
        mutation::begin(ctx, "modify_image", MutationRoles::SuperadminOnly).await?;
    let changes = image_changes(props).map_err(|e| Outcome::failure(e.to_string()))?;
    registry_sync(request)?
        .send(ModifyMessage {
            target,
            architecture,
            changes,
        })
        .await
        .map_err(mailbox_failure)?
        .map_err(|error| {
            let outcome: Outcome<()> = catalog_failure(error);
            if outcome.msg == "No such environment image." {
                Outcome::failure("Image not found")
            } else {
                outcome
            }
        })?;
    Ok(Outcome {
        ok: true,
        msg: String::new(),
        item: None,
    })
}

async fn clear_images(ctx: &Context<'_>, registry: String) -> Step {
    let (request, _client) =
        mutation::begin(ctx, "clear_images", MutationRoles::SuperadminOnly).await?;
    registry_sync(request)?
        .send(ClearMessage { registry })
        .await
        .map_err(mailbox_failure)?
        .map_err(catalog_failure)?;
    Ok(Outcome {
        ok: true,
        msg: String::new(),
        item: None,
    })
}

#[derive(Default)]
pub struct AdminMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl AdminMutation {
    async fn modify_agent(
        &self,
        ctx: &Context<'_>,
        id: String,
        props: ModifyAgentInput,
    ) -> ModifyAgent {
        settle(modify_agent(ctx, id, props).await)
    }

    async fn modify_image(
        &self,
        ctx: &Context<'_>,
        target: String,
        #[graphql(default_with = "Some(DEFAULT_IMAGE_ARCH.to_owned())")] architecture: Option<
            String,
        >,
        props: ModifyImageInput,
    ) -> ModifyImage {
        let architecture = architecture.unwrap_or_else(|| DEFAULT_IMAGE_ARCH.to_owned());
        settle(modify_image(ctx, target, architecture, props).await)
    }

    async fn clear_images(&self, ctx: &Context<'_>, registry: String) -> ClearImages {
        settle(clear_images(ctx, registry).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_inputs_become_the_originals_columns() {
        let changes = image_changes(ModifyImageInput {
            supported_accelerators: Some(vec!["cuda".into(), "rocm".into()]),
            labels: Some(vec![KvPairInput {
                key: Some("ai.backend.role".into()),
                value: Some("COMPUTE".into()),
            }]),
            resource_limits: Some(vec![ResourceLimitInput {
                key: Some("mem".into()),
                min: Some("1g".into()),
                max: Some(String::new()),
            }]),
            ..ModifyImageInput::default()
        })
        .unwrap();
        assert_eq!(changes.accelerators.as_deref(), Some("cuda,rocm"));
        assert_eq!(changes.labels, Some(json!({"ai.backend.role": "COMPUTE"})));
        assert_eq!(changes.resources, Some(json!({"mem": {"min": "1g"}})));
        assert!(
            image_changes(ModifyImageInput {
                image_type: Some("GPU".into()),
                ..ModifyImageInput::default()
            })
            .is_err()
        );
    }
}
