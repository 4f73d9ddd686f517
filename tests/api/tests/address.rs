//! Temporary: `Api::address()` until the harness that runs the real `spin up` offers it (then
//! delete this file and its `mod`). The app's socket address, for requests whose headers a
//! test must choose exactly (a foreign `Host`).

use spinling_api_tests::Api;
use std::net::SocketAddr;

pub trait Address {
    fn address(&self) -> SocketAddr;
}

impl Address for Api {
    fn address(&self) -> SocketAddr {
        self.app.serve_in_background()
    }
}
