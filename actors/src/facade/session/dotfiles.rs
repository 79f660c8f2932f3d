//! A new kernel's `internal_data`: the keypair's SSH keypair and its dotfiles, merged with
//! those of its group and domain (the keypair's win on the same path), as `prepare_dotfiles`.

use bai_schema::queries::session::DotfileSources;
use serde_json::{Map, Value, json};

use crate::facade::problem::Problem;

fn decode(bytes: &[u8], owner: &str) -> Result<Vec<Value>, Problem> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    rmp_serde::from_slice::<Vec<Value>>(bytes)
        .map_err(|e| Problem::internal(format!("the {owner} dotfiles are not a msgpack list: {e}")))
}

/// `internal_data` of the kernels of a new session.
pub fn internal_data(sources: &DotfileSources) -> Result<Value, Problem> {
    let mut dotfiles: Vec<Value> = Vec::new();
    let mut paths = std::collections::HashSet::new();
    for (bytes, owner) in [
        (&sources.keypair_dotfiles, "keypair"),
        (&sources.group_dotfiles, "group"),
        (&sources.domain_dotfiles, "domain"),
    ] {
        for dotfile in decode(bytes, owner)? {
            let path = dotfile
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if paths.insert(path) {
                dotfiles.push(dotfile);
            }
        }
    }
    // Lower priorities first, so that a higher one overwrites the same file in the container.
    dotfiles.reverse();
    let mut data = Map::new();
    data.insert("dotfiles".into(), Value::Array(dotfiles));
    if let (Some(public), Some(private)) = (&sources.ssh_public_key, &sources.ssh_private_key)
        && !public.is_empty()
        && !private.is_empty()
    {
        data.insert(
            "ssh_keypair".into(),
            json!({"public_key": public, "private_key": private}),
        );
    }
    Ok(Value::Object(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(files: Value) -> Vec<u8> {
        rmp_serde::to_vec(&files).unwrap()
    }

    #[test]
    fn the_keypairs_dotfiles_win_and_come_last() {
        let sources = DotfileSources {
            keypair_dotfiles: pack(json!([{"path": ".bashrc", "perm": "644", "data": "kp"}])),
            group_dotfiles: pack(json!([
                {"path": ".bashrc", "perm": "644", "data": "group"},
                {"path": ".vimrc", "perm": "644", "data": "group"}
            ])),
            domain_dotfiles: vec![0x90],
            ..Default::default()
        };
        let data = internal_data(&sources).unwrap();
        assert_eq!(
            data,
            json!({"dotfiles": [
                {"path": ".vimrc", "perm": "644", "data": "group"},
                {"path": ".bashrc", "perm": "644", "data": "kp"}
            ]})
        );
    }

    #[test]
    fn an_ssh_keypair_is_passed_on_and_garbage_is_named() {
        let sources = DotfileSources {
            ssh_public_key: Some("ssh-rsa AAA".into()),
            ssh_private_key: Some("-----BEGIN".into()),
            ..Default::default()
        };
        assert_eq!(
            internal_data(&sources).unwrap()["ssh_keypair"]["public_key"],
            "ssh-rsa AAA"
        );
        let sources = DotfileSources {
            group_dotfiles: vec![0xc1],
            ..Default::default()
        };
        assert!(internal_data(&sources).is_err());
    }
}
