//! `uniffi-bindgen-swift` pinned to the workspace's `uniffi` version: generates the
//! Swift sources, the FFI header and the module map separately, as SwiftPM wants
//! them (see `scripts/gen-swift-bindings.sh`).

fn main() {
    uniffi::uniffi_bindgen_swift()
}
