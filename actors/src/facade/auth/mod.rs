//! Request authentication: HMAC signatures (api.md §5.1), the request date window, the
//! keypair lookup with its short cache, `allowed_client_ip`, and the `AuthContext` handlers
//! receive. The route guard that runs these steps is `facade::access::Access`.

pub mod client_ip;
pub mod context;
pub mod credentials;
pub mod date;
pub mod scope;
pub mod signature;
pub mod verify;

pub use context::{AuthContext, Authenticated};
