//! `[manager] user` / `group`: started as root, the workers switch to this account after the
//! supervisor has bound the port and they have read the TLS key. As in the original, the
//! default is the owner of the program file.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::{AccountId, ManagerSection};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("manager.{key} = {name:?}: no such {kind} on this host")]
    Unknown {
        key: &'static str,
        kind: &'static str,
        name: String,
    },
    #[error("cannot look up manager.{key} = {name:?}: {source}")]
    Lookup {
        key: &'static str,
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot switch to uid {uid} / gid {gid}: {source}")]
    Switch {
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
}

/// The account the workers run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// Resolves `user` and `group`; unset ones default to the owner of the program file.
    pub fn resolve(manager: &ManagerSection) -> Result<Account, PrivilegeError> {
        let program_owner = std::env::current_exe()
            .and_then(|exe| std::fs::metadata(Path::new(&exe)))
            .map(|m| (m.uid(), m.gid()))
            .unwrap_or_else(|_| (Uid::current().as_raw(), Gid::current().as_raw()));
        let uid = match &manager.user {
            None => program_owner.0,
            Some(AccountId::Id(id)) => *id,
            Some(AccountId::Name(name)) => User::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    key: "user",
                    name: name.clone(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::Unknown {
                    key: "user",
                    kind: "user",
                    name: name.clone(),
                })?
                .uid
                .as_raw(),
        };
        let gid = match &manager.group {
            None => program_owner.1,
            Some(AccountId::Id(id)) => *id,
            Some(AccountId::Name(name)) => Group::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    key: "group",
                    name: name.clone(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::Unknown {
                    key: "group",
                    kind: "group",
                    name: name.clone(),
                })?
                .gid
                .as_raw(),
        };
        Ok(Account { uid, gid })
    }

    /// Whether this process would change account (it runs as root and the account is another).
    pub fn is_switch_needed(&self) -> bool {
        Uid::effective().is_root() && (self.uid != 0 || self.gid != 0)
    }

    /// Switches this process to the account when started as root; does nothing otherwise.
    pub fn switch_to(&self) -> Result<bool, PrivilegeError> {
        if !self.is_switch_needed() {
            return Ok(false);
        }
        let switch_err = |source| PrivilegeError::Switch {
            uid: self.uid,
            gid: self.gid,
            source,
        };
        let gid = Gid::from_raw(self.gid);
        nix::unistd::setgroups(&[gid]).map_err(switch_err)?;
        nix::unistd::setgid(gid).map_err(switch_err)?;
        nix::unistd::setuid(Uid::from_raw(self.uid)).map_err(switch_err)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_resolve_and_unknown_names_are_named() {
        let manager = ManagerSection {
            user: Some(AccountId::Id(1234)),
            group: Some(AccountId::Name("root".into())),
            ..ManagerSection::default()
        };
        assert_eq!(
            Account::resolve(&manager).unwrap(),
            Account { uid: 1234, gid: 0 }
        );
        let manager = ManagerSection {
            user: Some(AccountId::Name("no-such-user-bai".into())),
            ..ManagerSection::default()
        };
        let error = Account::resolve(&manager).unwrap_err();
        assert_eq!(
            error.to_string(),
            "manager.user = \"no-such-user-bai\": no such user on this host"
        );
    }
}
