//! Documents sent by id instead of text.
//!
//! - **Automatic persisted queries** (Apollo's `extensions.persistedQuery`,
//!   which urql's `persistedExchange` also speaks): a client sends a hash;
//!   on a miss it sends the text with the hash, and the text is kept for
//!   next time. A text is kept only under its own SHA-256, so no client can
//!   file a document under another's hash, and only once it has run.
//! - **Trusted documents**: only the manifest's documents run. Anything else
//!   is refused before it is parsed, which closes the whole class of
//!   hostile documents for a first-party app.
//!
//! A document found here still goes through the same limits and validation
//! as any other.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::graphql::limits;

/// Texts kept for automatic persisted queries. With [`MAX_KEPT_LEN`], at
/// most 8 MiB. (A `const`, so the `unwrap` runs at compile time.)
const CAPACITY: NonZeroUsize = NonZeroUsize::new(512).unwrap();
/// A longer text runs but is not kept; its client sends it again each time.
const MAX_KEPT_LEN: usize = 16 * 1024;
/// Texts one client address may have kept at once; its oldest goes first.
/// An eighth of the store: one address alone can never push out others'.
const PER_ADDRESS: usize = CAPACITY.get() / 8;

/// Where a request's document comes from.
#[derive(Clone)]
pub struct PersistedDocuments(Arc<Mode>);

enum Mode {
    Automatic(Mutex<Kept>),
    Trusted {
        by_id: HashMap<String, Arc<str>>,
        texts: HashSet<Arc<str>>,
    },
}

/// The document a request runs, and the hash to keep it under once it has.
pub struct Resolved {
    pub query: String,
    pub keep_as: Option<String>,
}

impl PersistedDocuments {
    /// Any document runs; hashes are learnt as clients register them.
    pub fn automatic() -> Self {
        Self(Arc::new(Mode::Automatic(Mutex::new(Kept::default()))))
    }

    /// Only the documents in `path` run: a JSON object from id to text. Each
    /// must parse and pass the limits, or the server does not start.
    pub fn trusted(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read GATEHOUSE_TRUSTED_DOCUMENTS {}", path.display())
        })?;
        let manifest: HashMap<String, String> = serde_json::from_str(&text).with_context(|| {
            format!(
                "GATEHOUSE_TRUSTED_DOCUMENTS {} is not a JSON object of id to document",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !manifest.is_empty(),
            "GATEHOUSE_TRUSTED_DOCUMENTS {} holds no documents",
            path.display()
        );
        let mut by_id = HashMap::new();
        let mut texts = HashSet::new();
        for (id, query) in manifest {
            if let Err(err) = limits::parse(&query) {
                anyhow::bail!("trusted document {id} is refused: {}", err.message);
            }
            let query: Arc<str> = query.into();
            texts.insert(query.clone());
            if by_id.insert(normalise(&id), query).is_some() {
                anyhow::bail!("trusted document id {id} appears twice, ignoring case and sha256:");
            }
        }
        Ok(Self(Arc::new(Mode::Trusted { by_id, texts })))
    }

    /// Whether only the manifest's documents run.
    pub fn is_trusted_only(&self) -> bool {
        matches!(*self.0, Mode::Trusted { .. })
    }

    /// The text to run for a request that sent `query`, an `id`, or both.
    pub fn resolve(&self, query: Option<String>, id: Option<&str>) -> Result<Resolved, AppError> {
        let id = id.map(normalise);
        let id = id.as_deref();
        match &*self.0 {
            Mode::Automatic(kept) => match (query, id) {
                (None, None) => Err(no_query()),
                (Some(query), None) => Ok(Resolved {
                    query,
                    keep_as: None,
                }),
                (None, Some(id)) => {
                    let kept = kept.lock().ok().and_then(|mut k| k.get(id));
                    kept.map(|query| Resolved {
                        query: query.to_string(),
                        keep_as: None,
                    })
                    .ok_or(AppError::PersistedQueryNotFound)
                }
                (Some(query), Some(id)) => {
                    let hash = sha256(&query);
                    if hash != id {
                        return Err(AppError::BadRequest(
                            "The persisted query's hash is not the SHA-256 of its text".into(),
                        ));
                    }
                    let keep_as = (query.len() <= MAX_KEPT_LEN).then_some(hash);
                    Ok(Resolved { query, keep_as })
                }
            },
            Mode::Trusted { by_id, texts } => {
                let known = id.and_then(|id| by_id.get(id));
                match (known, query) {
                    (Some(query), _) => Ok(Resolved {
                        query: query.to_string(),
                        keep_as: None,
                    }),
                    // Only an exact copy of a manifest document: nothing
                    // else is even parsed.
                    (None, Some(query)) if texts.contains(query.as_str()) => Ok(Resolved {
                        query,
                        keep_as: None,
                    }),
                    (None, Some(_)) => Err(AppError::DocumentNotTrusted),
                    (None, None) if id.is_some() => Err(AppError::PersistedQueryNotFound),
                    (None, None) => Err(no_query()),
                }
            }
        }
    }

    /// Keeps a document that has run, under the hash it was checked
    /// against, on the quota of the client address that sent it.
    pub fn keep(&self, hash: String, query: &str, client: Option<IpAddr>) {
        if let Mode::Automatic(kept) = &*self.0
            && let Ok(mut kept) = kept.lock()
        {
            kept.put(hash, query, Owner::of(client));
        }
    }
}

/// Whose quota a kept text counts on: an IPv4 address or an IPv6 /64, as
/// throttling counts clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Owner {
    Unknown,
    V4(u32),
    V6(u64),
}

impl Owner {
    fn of(client: Option<IpAddr>) -> Self {
        match client.map(|ip| ip.to_canonical()) {
            None => Self::Unknown,
            Some(IpAddr::V4(v4)) => Self::V4(v4.to_bits()),
            Some(IpAddr::V6(v6)) => Self::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

/// The automatic store: least recently used first out, and no client
/// address holding more than [`PER_ADDRESS`] of it.
struct Kept {
    texts: LruCache<String, (Arc<str>, Owner)>,
    /// Each owner's hashes, oldest first.
    owned: HashMap<Owner, VecDeque<String>>,
}

impl Default for Kept {
    fn default() -> Self {
        Self {
            texts: LruCache::new(CAPACITY),
            owned: HashMap::new(),
        }
    }
}

impl Kept {
    fn get(&mut self, hash: &str) -> Option<Arc<str>> {
        self.texts.get(hash).map(|(text, _)| text.clone())
    }

    /// A text already kept is only refreshed: it stays on its first owner.
    fn put(&mut self, hash: String, text: &str, owner: Owner) {
        if self.texts.get(&hash).is_some() {
            return;
        }
        let mine = self.owned.entry(owner).or_default();
        if mine.len() >= PER_ADDRESS
            && let Some(oldest) = mine.pop_front()
        {
            self.texts.pop(&oldest);
        }
        mine.push_back(hash.clone());
        if let Some((evicted, (_, from))) = self.texts.push(hash, (text.into(), owner)) {
            self.disown(from, &evicted);
        }
    }

    fn disown(&mut self, owner: Owner, hash: &str) {
        if let Some(hashes) = self.owned.get_mut(&owner) {
            hashes.retain(|h| h != hash);
            if hashes.is_empty() {
                self.owned.remove(&owner);
            }
        }
    }
}

/// One spelling per id: hashes are hex, whose case means nothing, and the
/// persisted-documents proposal may prefix them with `sha256:`.
fn normalise(id: &str) -> String {
    let id = id.to_ascii_lowercase();
    match id.strip_prefix("sha256:") {
        Some(hash) => hash.to_owned(),
        None => id,
    }
}

fn no_query() -> AppError {
    AppError::BadRequest("The request has no query".into())
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "query Me { me { id } }";

    #[test]
    fn a_text_is_kept_only_under_its_own_hash() {
        let apq = PersistedDocuments::automatic();
        assert!(matches!(
            apq.resolve(None, Some(&sha256(ME))),
            Err(AppError::PersistedQueryNotFound)
        ));
        let wrong = sha256("query Other { me { email } }");
        assert!(matches!(
            apq.resolve(Some(ME.into()), Some(&wrong)),
            Err(AppError::BadRequest(_))
        ));
        let upper = sha256(ME).to_ascii_uppercase();
        let resolved = apq.resolve(Some(ME.into()), Some(&upper)).unwrap();
        apq.keep(resolved.keep_as.unwrap(), &resolved.query, None);
        for id in [sha256(ME), upper, format!("sha256:{}", sha256(ME))] {
            assert_eq!(apq.resolve(None, Some(&id)).unwrap().query, ME);
        }
    }

    #[test]
    fn one_address_cannot_push_out_another_addresses_texts() {
        let apq = PersistedDocuments::automatic();
        let (mine, theirs) = (Some("198.51.100.1".parse().unwrap()), None);
        apq.keep(sha256(ME), ME, mine);
        let flood = |i: usize| format!("query Q{i} {{ me {{ id }} }}");
        for i in 0..CAPACITY.get() + 8 {
            apq.keep(sha256(&flood(i)), &flood(i), theirs);
        }
        assert_eq!(apq.resolve(None, Some(&sha256(ME))).unwrap().query, ME);
        // The flood kept only its newest texts.
        let last = flood(CAPACITY.get() + 7);
        assert!(apq.resolve(None, Some(&sha256(&last))).is_ok());
        assert!(apq.resolve(None, Some(&sha256(&flood(0)))).is_err());
    }

    #[test]
    fn long_texts_run_but_are_not_kept() {
        let apq = PersistedDocuments::automatic();
        let long = format!("query Me {{ me {{ id }} }}{}", " ".repeat(MAX_KEPT_LEN));
        let resolved = apq
            .resolve(Some(long.clone()), Some(&sha256(&long)))
            .unwrap();
        assert_eq!(resolved.query, long);
        assert!(resolved.keep_as.is_none());
    }

    #[test]
    fn the_manifest_alone_decides_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let other = "query Other { me { user { id } } }";
        std::fs::write(
            &path,
            serde_json::json!({ "abc": ME, "sha256:def": other }).to_string(),
        )
        .unwrap();
        let trusted = PersistedDocuments::trusted(&path).unwrap();
        assert_eq!(trusted.resolve(None, Some("abc")).unwrap().query, ME);
        assert_eq!(trusted.resolve(None, Some("sha256:abc")).unwrap().query, ME);
        assert_eq!(trusted.resolve(None, Some("ABC")).unwrap().query, ME);
        assert_eq!(trusted.resolve(None, Some("def")).unwrap().query, other);
        assert!(trusted.resolve(None, Some("sha256:sha256:def")).is_err());
        assert_eq!(trusted.resolve(Some(ME.into()), None).unwrap().query, ME);
        assert!(matches!(
            trusted.resolve(Some("{ me { id } }".into()), None),
            Err(AppError::DocumentNotTrusted)
        ));
        assert!(matches!(
            trusted.resolve(None, Some("fed")),
            Err(AppError::PersistedQueryNotFound)
        ));
        // Registration does nothing in this mode.
        trusted.keep(sha256("{ __typename }"), "{ __typename }", None);
        assert!(
            trusted
                .resolve(None, Some(&sha256("{ __typename }")))
                .is_err()
        );
    }

    #[test]
    fn a_manifest_that_would_be_refused_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        for bad in [
            "[]".to_owned(),
            "{}".to_owned(),
            serde_json::json!({ "x": "query {" }).to_string(),
            serde_json::json!({ "x": ME, "sha256:X": ME }).to_string(),
            // Parses, but is nested past the limit.
            serde_json::json!({ "x": format!("{{ {}id{} }}", "me { ".repeat(40), " }".repeat(40)) })
                .to_string(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(PersistedDocuments::trusted(&path).is_err(), "{bad}");
        }
        assert!(PersistedDocuments::trusted(&dir.path().join("missing.json")).is_err());
    }
}
