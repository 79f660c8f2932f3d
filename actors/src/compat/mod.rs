//! One home for each rule of the original that clients can see in our output or input: Python's
//! text forms (`pyjson`, `pyrepr`, `binary_size`), the folder names a container reserves (`reserved`) and the
//! shape of API keypairs (`keypair`) and of random tokens (`token`). Each rule is written once, with tests that pin the
//! original's outputs; every route, resolver and CLI command uses it from here.

pub mod binary_size;
pub mod keypair;
pub mod pyjson;
pub mod pyrepr;
pub mod reserved;
pub mod token;
