//! The PostgreSQL enums the filters compare with, as the mini-language compiler needs them:
//! stored labels and, for enums stored by value, the original's member names.

use super::minilang::EnumSpec;

pub static SESSION_STATUS: EnumSpec = EnumSpec {
    pg_type: "sessionstatus",
    labels: &[
        "PENDING",
        "SCHEDULED",
        "PULLING",
        "PREPARING",
        "RUNNING",
        "RESTARTING",
        "RUNNING_DEGRADED",
        "TERMINATING",
        "TERMINATED",
        "ERROR",
        "CANCELLED",
    ],
    names: &[],
    accept_lowercase: true,
};

pub static KERNEL_STATUS: EnumSpec = EnumSpec {
    pg_type: "kernelstatus",
    labels: &[
        "PENDING",
        "SCHEDULED",
        "PREPARING",
        "BUILDING",
        "PULLING",
        "RUNNING",
        "RESTARTING",
        "RESIZING",
        "SUSPENDED",
        "TERMINATING",
        "TERMINATED",
        "ERROR",
        "CANCELLED",
    ],
    names: &[],
    accept_lowercase: true,
};

pub static SESSION_RESULT: EnumSpec = EnumSpec {
    pg_type: "sessionresult",
    labels: &["UNDEFINED", "SUCCESS", "FAILURE"],
    names: &[],
    accept_lowercase: true,
};

pub static AGENT_STATUS: EnumSpec = EnumSpec {
    pg_type: "agentstatus",
    labels: &["ALIVE", "LOST", "RESTARTING", "TERMINATED"],
    names: &[],
    accept_lowercase: false,
};

pub static USER_STATUS: EnumSpec = EnumSpec {
    pg_type: "userstatus",
    labels: &["active", "inactive", "deleted", "before-verification"],
    names: &["ACTIVE", "INACTIVE", "DELETED", "BEFORE_VERIFICATION"],
    accept_lowercase: false,
};

pub static USER_ROLE: EnumSpec = EnumSpec {
    pg_type: "userrole",
    labels: &["superadmin", "admin", "user", "monitor"],
    names: &["SUPERADMIN", "ADMIN", "USER", "MONITOR"],
    accept_lowercase: false,
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
