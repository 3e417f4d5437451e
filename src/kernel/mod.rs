//! What the kernel of this network namespace says, read over netlink. The sockets and the
//! async runtime they need stay inside this module; callers get plain functions.

pub mod addr;
pub mod guard;
pub mod route;
pub mod sockets;
pub mod xfrm;

use std::future::Future;
use std::time::Instant;

use crate::error::{Error, Result};

/// Runs one netlink conversation on a private current-thread runtime, bounded by `deadline`.
pub(crate) fn block_on_until<T>(
    what: &str,
    deadline: Instant,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Generic(format!("{what}: cannot start the netlink runtime: {e}")))?;
    let budget = deadline.saturating_duration_since(Instant::now());
    rt.block_on(async move {
        match tokio::time::timeout(budget, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Generic(format!(
                "{what}: no answer from the kernel within {budget:?}"
            ))),
        }
    })
}
