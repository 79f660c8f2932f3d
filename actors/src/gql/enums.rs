//! Status-list arguments (`status: "PENDING,RUNNING"`) read against the PostgreSQL enums the
//! filters compare with (`bai_schema::minilang::enums`).

use bai_schema::minilang::EnumSpec;
pub use bai_schema::minilang::enums::{
    AGENT_STATUS, KERNEL_STATUS, SESSION_RESULT, SESSION_STATUS, USER_ROLE, USER_STATUS,
};

/// Session types are stored as text (`sessions.session_type`), by member name.
pub const SESSION_TYPES: &[&str] = &["INTERACTIVE", "BATCH", "INFERENCE"];

/// Parses a comma-separated status list argument (`status: "PENDING,RUNNING"`) into labels.
pub fn parse_status_list(
    spec: &EnumSpec,
    argument: &str,
    raw: &str,
) -> Result<Vec<String>, super::error::GqlError> {
    raw.split(',')
        .map(|item| {
            spec.label_of(item.trim())
                .map(str::to_owned)
                .ok_or_else(|| {
                    super::error::GqlError::invalid(format!(
                        "{argument}: {item:?} is not one of {}",
                        spec.labels.join(", ")
                    ))
                })
        })
        .collect()
}
