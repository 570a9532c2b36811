//! Keeps parsed documents, so the few operations an app sends over and over
//! are parsed once. Parsing was a tenth of a guarded request's CPU.
//!
//! Only documents that parsed and passed [`QueryLimits`] are kept; the cache
//! is bounded in entries and in the size of each query, so distinct hostile
//! queries can only churn it. Validation still runs on every request,
//! because it depends on the variables.
//!
//! [`QueryLimits`]: crate::graphql::limits::QueryLimits

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};
use lru::LruCache;

/// Distinct documents kept. An SPA sends a few dozen. (A `const`, so the
/// `unwrap` runs at compile time and cannot panic at run time.)
const CAPACITY: NonZeroUsize = NonZeroUsize::new(256).unwrap();
/// Longer queries are parsed every time (GraphiQL's introspection is ~2 KiB).
const MAX_QUERY_LEN: usize = 8 * 1024;

type Cache = Mutex<LruCache<String, Arc<ExecutableDocument>>>;

/// The extension factory to register on the schema, before `QueryLimits`.
pub struct DocumentCache(Arc<Cache>);

impl Default for DocumentCache {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(CAPACITY))))
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentCacheExtension(self.0.clone()))
    }
}

struct DocumentCacheExtension(Arc<Cache>);

impl DocumentCacheExtension {
    fn get(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        self.0.lock().ok()?.get(query).cloned()
    }

    fn put(&self, query: &str, document: &ExecutableDocument) {
        if let Ok(mut cache) = self.0.lock() {
            cache.put(query.to_owned(), Arc::new(document.clone()));
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentCacheExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_QUERY_LEN {
            return next.run(ctx, query, variables).await;
        }
        if let Some(document) = self.get(query) {
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await?;
        self.put(query, &document);
        Ok(document)
    }
}
