//! Sessions as the client API handles them: the creation request, image references, the
//! resources a kernel asks for, its dotfiles, and the seam to the session scheduler. The HTTP
//! handlers are in `facade::routes::session`.

pub mod control;
pub mod dotfiles;
pub mod image_ref;
pub mod request;
pub mod resources;
