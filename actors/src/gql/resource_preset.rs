//! `ResourcePreset`: the `resource_preset`/`resource_presets` queries and the
//! create/modify/delete mutations (superadmin).

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::slots::parse_binary_size;
use tokio_postgres::Row;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::scalars::{BigInt, JsonString};
use super::sql::{self, Conditions, SqlParams};
use super::validate;

/// A resource preset as the original's GraphQL type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ResourcePreset", rename_fields = "snake_case")]
pub struct ResourcePreset {
    pub name: Option<String>,
    pub resource_slots: Option<JsonString>,
    pub shared_memory: Option<BigInt>,
}

impl ResourcePreset {
    fn from_row(row: &Row) -> GqlResult<ResourcePreset> {
        let shared_memory: Option<i64> = row.try_get("shared_memory")?;
        Ok(ResourcePreset {
            name: Some(row.try_get("name")?),
            resource_slots: Some(JsonString(row.try_get("resource_slots")?)),
            // The original treats 0 like no value.
            shared_memory: shared_memory.filter(|size| *size != 0).map(BigInt),
        })
    }
}

async fn load_presets(
    request: &GqlRequest,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<ResourcePreset>> {
    let client = sql::connection(&request.db).await?;
    let statement = format!(
        "SELECT name, resource_slots, shared_memory FROM resource_presets {} ORDER BY name",
        conditions.where_clause()
    );
    sql::query(&client, &statement, params)
        .await?
        .iter()
        .map(ResourcePreset::from_row)
        .collect()
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
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("name = {}", params.push(name)));
        Ok(load_presets(request, &conditions, &params)
            .await?
            .into_iter()
            .next())
    }

    async fn resource_presets(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<ResourcePreset>>> {
        let request = GqlRequest::of(ctx)?;
        Ok(Some(
            load_presets(request, &Conditions::new(), &SqlParams::new()).await?,
        ))
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
    let mut params = SqlParams::new();
    let statement = format!(
        "INSERT INTO resource_presets (name, resource_slots, shared_memory) VALUES ({}, {}, {}) \
         RETURNING name, resource_slots, shared_memory",
        params.push(name),
        params.push(slots),
        params.push(shared_memory),
    );
    match sql::query_opt_raw(&client, &statement, &params).await? {
        Some(row) => Ok(Outcome::success(Some(ResourcePreset::from_row(&row)?))),
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
    let mut params = SqlParams::new();
    let mut sets = Vec::new();
    if let Some(JsonString(value)) = &props.resource_slots {
        let slots = validate::resource_slots_input("resource_slots", value)?;
        sets.push(format!("resource_slots = {}", params.push(slots)));
    }
    if let Some(text) = &props.shared_memory {
        let bytes = shared_memory_bytes(Some(text))?;
        sets.push(format!("shared_memory = {}", params.push(bytes)));
    }
    if sets.is_empty() {
        sets.push("name = name".to_owned());
    }
    let statement = format!(
        "UPDATE resource_presets SET {} WHERE name = {}",
        sets.join(", "),
        params.push(name)
    );
    let count = client
        .execute(statement.as_str(), &params.as_refs())
        .await?;
    Ok(if count > 0 {
        Outcome::success(None)
    } else {
        Outcome::no_match("ModifyResourcePreset")
    })
}

async fn delete_preset(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) =
        mutation::begin(ctx, "delete_resource_preset", MutationRoles::SuperadminOnly).await?;
    let count = client
        .execute("DELETE FROM resource_presets WHERE name = $1", &[&name])
        .await?;
    Ok(if count > 0 {
        Outcome::success(None)
    } else {
        Outcome::no_match("DeleteResourcePreset")
    })
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
