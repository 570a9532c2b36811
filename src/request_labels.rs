//! What the request being served is, for its log line and its metrics:
//! labels set while it runs, read by the request log when it ends.

use std::cell::RefCell;
use std::future::Future;

/// What the request's line reports beyond HTTP, set while it is served.
#[derive(Default)]
pub struct Labels {
    pub operation: Option<String>,
    pub outcome: Option<String>,
}

tokio::task_local! {
    static LABELS: RefCell<Labels>;
}

/// Names the GraphQL operation of the request being served.
pub fn set_operation(label: &str) {
    let _ = LABELS.try_with(|labels| labels.borrow_mut().operation = Some(label.to_owned()));
}

/// The request's outcome: `OK`, or its first error's code.
pub fn set_outcome(code: &str) {
    let _ = LABELS.try_with(|labels| labels.borrow_mut().outcome = Some(code.to_owned()));
}

/// Whether the running task is serving a request.
pub fn in_request() -> bool {
    LABELS.try_with(|_| ()).is_ok()
}

/// Runs `serve` as one request, returning what it answered and its labels.
pub async fn scope<T>(serve: impl Future<Output = T>) -> (T, Labels) {
    LABELS
        .scope(RefCell::default(), async {
            let answer = serve.await;
            (answer, LABELS.with(|labels| labels.take()))
        })
        .await
}
