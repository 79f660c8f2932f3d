//! `POST /session/{name}/rename?name=NEW`: a RUNNING session takes a new name (204).

use actix_web::{HttpRequest, HttpResponse, web};
use regex::Regex;

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::state::AppState;
use crate::interaction::{InteractionError, SessionInteraction};

/// Whether `name` is a session name the original accepts: 4–64 ASCII word characters, dots
/// and dashes, starting and ending with a word character.
pub fn valid_session_name(name: &str) -> bool {
    static PATTERN: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    let pattern =
        PATTERN.get_or_init(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*[A-Za-z0-9_]$").ok());
    (4..=64).contains(&name.len()) && pattern.as_ref().is_some_and(|p| p.is_match(name))
}

pub async fn rename(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    let new_name = params.string(&["name", "clientSessionToken"])?;
    if !valid_session_name(&new_name) {
        return Err(invalid_param(
            "name",
            "does not match the session name pattern",
        ));
    }
    slog::info!(state.log, "RENAME_SESSION"; "access_key" => &caller.access_key,
        "session" => &reference, "new_name" => &new_name);
    match interaction.rename(&reference, &owner, &new_name).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        // The original refuses with 400, not 409, here.
        Err(InteractionError::InvalidState { .. }) => Err(Problem::invalid_params(
            "Can't change name of not running session",
        )),
        Err(error) => Err(problem(&state, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_original_pattern() {
        assert!(valid_session_name("my-sess.1"));
        assert!(!valid_session_name("abc"));
        assert!(!valid_session_name("-abcd"));
        assert!(!valid_session_name("abcd-"));
        assert!(!valid_session_name("ab cd"));
        assert!(!valid_session_name(&"a".repeat(65)));
    }
}
