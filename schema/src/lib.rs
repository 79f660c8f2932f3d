//! bai-manager's PostgreSQL schema: migrations, enums, resource slots, row types and fixtures.

pub mod enums;
pub mod fixture;
pub mod image_admin;
pub mod image_ref;
pub mod images;
pub mod migrate;
pub mod minilang;
pub mod pool;
pub mod queries;
pub mod slot_map;
pub mod slot_name;
pub mod slots;

pub use pool::{DbSettings, PoolError, PoolRole};
pub use slot_name::SlotName;
pub use slots::{ResourceSlot, SlotAmount, SlotUnit};
