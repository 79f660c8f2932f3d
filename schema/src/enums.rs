//! The PostgreSQL enum types of the schema, as Rust enums that bind and read directly.
//!
//! Backend.AI stores some enums by member NAME (`kernelstatus`: `RUNNING`) and others by VALUE
//! (`userrole`: `superadmin`); the labels here are exactly what the database holds.

use std::fmt;
use std::str::FromStr;

use postgres_types::{FromSql, ToSql};
use serde::{Deserialize, Serialize};

/// Declares a PG enum mirror with its labels, `as_str`, `FromStr`, `Display` and serde.
macro_rules! pg_enum {
    ($(#[$meta:meta])* $name:ident, $pg:literal, { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ToSql, FromSql)]
        #[postgres(name = $pg)]
        pub enum $name {
            $(#[postgres(name = $label)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownEnumLabel;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($label => Ok($name::$variant),)+
                    _ => Err(UnknownEnumLabel {
                        type_name: $pg,
                        label: text.to_owned(),
                        expected: &[$($label),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label:?} is not a valid {type_name} (expected one of {expected:?})")]
pub struct UnknownEnumLabel {
    pub type_name: &'static str,
    pub label: String,
    pub expected: &'static [&'static str],
}

pg_enum!(
    /// Status of one container (stored by name).
    KernelStatus, "kernelstatus", {
    Pending => "PENDING", Scheduled => "SCHEDULED", Preparing => "PREPARING",
    Building => "BUILDING", Pulling => "PULLING", Running => "RUNNING",
    Restarting => "RESTARTING", Resizing => "RESIZING", Suspended => "SUSPENDED",
    Terminating => "TERMINATING", Terminated => "TERMINATED", Error => "ERROR",
    Cancelled => "CANCELLED",
});

pg_enum!(
    /// Status of a session, derived from its kernels (stored by name).
    SessionStatus, "sessionstatus", {
    Pending => "PENDING", Scheduled => "SCHEDULED", Pulling => "PULLING",
    Preparing => "PREPARING", Running => "RUNNING", Restarting => "RESTARTING",
    RunningDegraded => "RUNNING_DEGRADED", Terminating => "TERMINATING",
    Terminated => "TERMINATED", Error => "ERROR", Cancelled => "CANCELLED",
});

pg_enum!(SessionResult, "sessionresult", {
    Undefined => "UNDEFINED", Success => "SUCCESS", Failure => "FAILURE",
});

pg_enum!(
    /// Status of an agent (stored by name).
    AgentStatus, "agentstatus", {
    Alive => "ALIVE", Lost => "LOST", Restarting => "RESTARTING", Terminated => "TERMINATED",
});

pg_enum!(UserStatus, "userstatus", {
    Active => "active", Inactive => "inactive", Deleted => "deleted",
    BeforeVerification => "before-verification",
});

pg_enum!(UserRole, "userrole", {
    Superadmin => "superadmin", Admin => "admin", User => "user", Monitor => "monitor",
});

pg_enum!(
    /// Role of a kernel (23.09; stored by name).
    KernelRole, "kernelrole", {
    Inference => "INFERENCE", Compute => "COMPUTE", System => "SYSTEM",
});

pg_enum!(DefaultForUnspecified, "defaultforunspecified", {
    Limited => "LIMITED", Unlimited => "UNLIMITED",
});

pg_enum!(TemplateType, "templatetype", { Task => "TASK", Cluster => "CLUSTER" });

pg_enum!(ImageType, "imagetype", { Compute => "COMPUTE", System => "SYSTEM", Service => "SERVICE" });

pg_enum!(ProjectType, "projecttype", { General => "general", ModelStore => "model-store" });

pg_enum!(VFolderPermission, "vfolderpermission", { ReadOnly => "ro", ReadWrite => "rw", RwDelete => "wd" });

pg_enum!(VFolderUsageMode, "vfolderusagemode", { General => "general", Model => "model", Data => "data" });

pg_enum!(VFolderOwnershipType, "vfolderownershiptype", { User => "user", Group => "group" });

pg_enum!(VFolderInvitationState, "vfolderinvitationstate", {
    Pending => "pending", Canceled => "canceled", Accepted => "accepted", Rejected => "rejected",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for status in KernelStatus::ALL {
            assert_eq!(status.as_str().parse::<KernelStatus>().unwrap(), *status);
        }
        assert_eq!(
            "before-verification".parse::<UserStatus>().unwrap(),
            UserStatus::BeforeVerification
        );
    }

    #[test]
    fn unknown_label_names_the_type_and_choices() {
        let err = "running".parse::<KernelStatus>().unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("kernelstatus") && message.contains("RUNNING"),
            "{message}"
        );
    }
}
