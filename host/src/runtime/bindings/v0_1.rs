//! Host bindings of `wharf:provider@0.1.0` (`wit/0.1.0/provider.wit`): no
//! byte ranges, no `resolve`. What it shares with the current version comes
//! from [`bridge_older_version!`], told that its capabilities declare
//! neither.

wasmtime::component::bindgen!({
    world: "provider",
    path: "../wit/0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wharf:provider/types.body": crate::body::Body,
    },
});

use self::exports::wharf::provider::adapter;
use self::wharf::provider::{http, log, secrets, storage, types};

// A 0.1.0 adapter offers neither byte ranges nor `resolve`.
bridge_older_version!(capabilities since 0.1.0: |c| { ranged_download: false, resolve: false });
