//! `bai-manager gql show`: prints the admin GraphQL schema in SDL, as the original's
//! `backend.ai mgr gql show` prints graphene's (snake_case names, `Queries`/`Mutations` roots).

use clap::Subcommand;

use super::GlobalArgs;
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum GqlCommand {
    /// Print the GraphQL schema (SDL).
    Show,
}

pub fn run(command: GqlCommand, _global: &GlobalArgs) -> i32 {
    match command {
        GqlCommand::Show => {
            print!("{}", bai_actors::gql::sdl());
            exit::OK
        }
    }
}
