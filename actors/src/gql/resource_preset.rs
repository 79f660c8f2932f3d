//! `ResourcePreset`: the `resource_preset`/`resource_presets` queries and the
//! create/modify/delete mutations (superadmin).

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::queries::resource_preset_admin::{self, PresetChanges, PresetRow};
use bai_schema::slots::parse_binary_size;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::scalars::{BigInt, JsonString};
use super::sql;
use super::validate;

/// A resource preset as the original's GraphQL type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ResourcePreset", rename_fields = "snake_case")]
pub struct ResourcePreset {
    pub name: Option<String>,
    pub resource_slots: Option<JsonString>,
    pub shared_memory: Option<BigInt>,
}

impl From<PresetRow> for ResourcePreset {
    fn from(row: PresetRow) -> ResourcePreset {
        ResourcePreset {
            name: Some(row.name),
            resource_slots: Some(JsonString(row.resource_slots)),
            // The original treats 0 like no value.
            shared_memory: row.shared_memory.filter(|size| *size != 0).map(BigInt),
        }
    }
}

async fn load_presets(request: &GqlRequest, name: Option<&str>) -> GqlResult<Vec<ResourcePreset>> {
    let client = sql::connection(&request.db).await?;
    Ok(resource_preset_admin::list_presets(&client, name)
        .await?
        .into_iter()
        .map(ResourcePreset::from)
        .collect())
}

#[derive(Default)]
pub struct ResourcePresetQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePresetQuery {
    async fn resource_preset(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<ResourcePreset>> {
        let request = GqlRequest::of(ctx)?;
        let Some(name) = name else {
            return Ok(None);
        };
        Ok(load_presets(request, Some(&name)).await?.into_iter().next())
    }

    async fn resource_presets(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<ResourcePreset>>> {
        let request = GqlRequest::of(ctx)?;
        Ok(Some(load_presets(request, None).await?))
    }
}

#[derive(InputObject, Debug)]
#[graphql(name = "CreateResourcePresetInput", rename_fields = "snake_case")]
pub struct CreateResourcePresetInput {
    pub resource_slots: JsonString,
    /// A byte size such as `64m`.
    pub shared_memory: Option<String>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyResourcePresetInput", rename_fields = "snake_case")]
pub struct ModifyResourcePresetInput {
    pub resource_slots: Option<JsonString>,
    pub shared_memory: Option<String>,
}

mutation_payload!(CreateResourcePreset, "CreateResourcePreset", resource_preset: ResourcePreset);
mutation_payload!(ModifyResourcePreset, "ModifyResourcePreset");
mutation_payload!(DeleteResourcePreset, "DeleteResourcePreset");

type Step<T> = Result<Outcome<T>, Outcome<T>>;

fn shared_memory_bytes<T>(text: Option<&str>) -> Result<Option<i64>, Outcome<T>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => parse_binary_size(text)
            .ok()
            .and_then(|bytes| i64::try_from(bytes).ok())
            .map(Some)
            .ok_or_else(|| Outcome::failure(format!("shared_memory: {text:?} is not a byte size"))),
    }
}

async fn create_preset(
    ctx: &Context<'_>,
    name: String,
    props: CreateResourcePresetInput,
) -> Step<ResourcePreset> {
    let (_, client) =
        mutation::begin(ctx, "create_resource_preset", MutationRoles::SuperadminOnly).await?;
    let slots = validate::resource_slots_input("resource_slots", &props.resource_slots.0)?;
    let shared_memory = shared_memory_bytes(props.shared_memory.as_deref())?;
    let preset = PresetRow {
        name,
        resource_slots: slots,
        shared_memory,
    };
    match resource_preset_admin::insert_preset(&client, &preset).await? {
        Some(row) => Ok(Outcome::success(Some(ResourcePreset::from(row)))),
        None => Ok(Outcome::no_match("CreateResourcePreset")),
    }
}

async fn modify_preset(
    ctx: &Context<'_>,
    name: String,
    props: ModifyResourcePresetInput,
) -> Step<()> {
    let (_, client) =
        mutation::begin(ctx, "modify_resource_preset", MutationRoles::SuperadminOnly).await?;
    let resource_slots = match &props.resource_slots {
        Some(JsonString(value)) => Some(validate::resource_slots_input("resource_slots", value)?),
        None => None,
    };
    let shared_memory = match &props.shared_memory {
        Some(text) => Some(shared_memory_bytes(Some(text))?),
        None => None,
    };
    let changes = PresetChanges {
        resource_slots,
        shared_memory,
    };
    Ok(
        if resource_preset_admin::update_preset(&client, &name, &changes).await? {
            Outcome::success(None)
        } else {
            Outcome::no_match("ModifyResourcePreset")
        },
    )
}

async fn delete_preset(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) =
        mutation::begin(ctx, "delete_resource_preset", MutationRoles::SuperadminOnly).await?;
    Ok(
        if resource_preset_admin::delete_preset(&client, &name).await? {
            Outcome::success(None)
        } else {
            Outcome::no_match("DeleteResourcePreset")
        },
    )
}

#[derive(Default)]
pub struct ResourcePresetMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePresetMutation {
    async fn create_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateResourcePresetInput,
    ) -> CreateResourcePreset {
        settle(create_preset(ctx, name, props).await)
    }

    async fn modify_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyResourcePresetInput,
    ) -> ModifyResourcePreset {
        settle(modify_preset(ctx, name, props).await)
    }

    async fn delete_resource_preset(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> DeleteResourcePreset {
        settle(delete_preset(ctx, name).await)
    }
}
