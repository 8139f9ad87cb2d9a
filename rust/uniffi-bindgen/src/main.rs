//! `uniffi-bindgen` pinned to the workspace's `uniffi` version.
//!
//! Run through `cargo run -p uniffi-bindgen --bin uniffi-bindgen -- ...`; library
//! mode needs the cargo workspace (it calls `cargo metadata`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
