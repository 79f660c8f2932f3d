//! etcd access: Backend.AI's key layout and a namespaced client.

pub mod keys;
pub mod store;

pub use store::{EtcdError, EtcdSettings, EtcdStore};
