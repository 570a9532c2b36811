//! What runs the documents that arrive over a WebSocket: the schema, behind
//! the same persisted-documents rules as HTTP. In trusted-documents mode a
//! document outside the manifest is refused before it is parsed.

use std::sync::Arc;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Data, Executor, Request, Response};

use crate::error::AppError;
use crate::graphql::persisted::PersistedDocuments;
use crate::graphql::schema::GatehouseSchema;

/// The schema, with the document rules applied first.
#[derive(Clone)]
pub struct SocketExecutor {
    pub schema: GatehouseSchema,
    pub documents: PersistedDocuments,
}

impl SocketExecutor {
    /// The request with its document resolved, or the refusal.
    fn resolve(&self, mut request: Request) -> Result<Request, AppError> {
        if !self.documents.is_trusted_only() {
            return Ok(request);
        }
        let id = request
            .extensions
            .get("persistedQuery")
            .and_then(|p| match p {
                async_graphql::Value::Object(fields) => fields.get("sha256Hash").cloned(),
                _ => None,
            })
            .and_then(|hash| match hash {
                async_graphql::Value::String(hash) => Some(hash),
                _ => None,
            });
        let query = (!request.query.is_empty()).then(|| std::mem::take(&mut request.query));
        match self.documents.resolve(query, id.as_deref()) {
            Ok(resolved) => {
                request.query = resolved.query;
                Ok(request)
            }
            Err(err) => Err(err),
        }
    }
}

impl Executor for SocketExecutor {
    async fn execute(&self, request: Request) -> Response {
        match self.resolve(request) {
            Ok(request) => self.schema.execute(request).await,
            Err(refused) => refusal(refused),
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.resolve(request) {
            Ok(request) => self
                .schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default()),
            Err(refused) => stream::once(async move { refusal(refused) }).boxed(),
        }
    }
}

fn refusal(err: AppError) -> Response {
    Response::from_errors(vec![err.into_server_error()])
}
