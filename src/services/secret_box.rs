//! Seals secrets the server must read back (TOTP seeds) with
//! XChaCha20-Poly1305 under a server key. Each ciphertext records its key's
//! id, so keys can rotate: the first key seals, every listed key opens.
//! The owner's id is the associated data, so a sealed secret moved to
//! another account's row does not open.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use uuid::Uuid;

use crate::error::AppError;

const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;
/// What the associated data starts with: the purpose, then the owner.
const CONTEXT: &[u8] = b"gatehouse totp secret v1:";

/// The server's sealing keys. Their `Debug` shows only their ids.
#[derive(Clone)]
pub struct SecretBox {
    current: String,
    keys: HashMap<String, XChaCha20Poly1305>,
}

impl SecretBox {
    /// Keys from text: `ID:BASE64` entries (32 bytes each), separated by
    /// commas or line breaks; the first seals.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut current = None;
        let mut keys = HashMap::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or("each key is ID:BASE64, e.g. k1:<openssl rand -base64 32>")?;
            let id_ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err("a key id is 1 to 32 letters, digits, - or _".into());
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| format!("key {id}: not base64"))?;
            if bytes.len() != KEY_BYTES {
                return Err(format!(
                    "key {id}: {} bytes, expected {KEY_BYTES}",
                    bytes.len()
                ));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| format!("key {id}: not a key"))?;
            if keys.insert(id.to_owned(), cipher).is_some() {
                return Err(format!("key {id} is listed twice"));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or("no key given")?;
        Ok(Self { current, keys })
    }

    /// The keys at `path`, creating the file (mode 0600) with a new key if
    /// it does not exist. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), String> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(&text).map(|keys| (keys, false)),
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot read {shown}: {err}"));
            }
            Err(_) => {}
        }
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
        let text = format!("k1:{}\n", STANDARD.encode(key));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {shown}: {e}"))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        Self::parse(&text).map(|keys| (keys, true))
    }

    /// Seals `plain` for `owner`: the sealing key's id, and the nonce and
    /// ciphertext in base64.
    pub fn seal(&self, owner: Uuid, plain: &[u8]) -> Result<(String, String), AppError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(AppError::internal)?;
        let cipher = &self.keys[&self.current];
        let aad = associated_data(owner);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| AppError::internal(anyhow::anyhow!("sealing failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok((self.current.clone(), STANDARD.encode(out)))
    }

    /// Opens what [`SecretBox::seal`] sealed for `owner` under `key_id`.
    pub fn open(&self, owner: Uuid, key_id: &str, sealed: &str) -> Result<Vec<u8>, AppError> {
        let cipher = self.keys.get(key_id).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "a secret is sealed with key {key_id:?}, which is not configured; \
                 keep old keys listed after the new one in GATEHOUSE_SECRET_KEY"
            ))
        })?;
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| AppError::internal(anyhow::anyhow!("sealed secret is not base64")))?;
        if bytes.len() < NONCE_BYTES {
            return Err(AppError::internal(anyhow::anyhow!(
                "sealed secret too short"
            )));
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(AppError::internal)?;
        let aad = associated_data(owner);
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| AppError::internal(anyhow::anyhow!("sealed secret does not open")))
    }
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("SecretBox")
            .field("current", &self.current)
            .field("keys", &ids)
            .finish()
    }
}

fn associated_data(owner: Uuid) -> Vec<u8> {
    let mut aad = CONTEXT.to_vec();
    aad.extend_from_slice(owner.as_bytes());
    aad
}

/// Where the embedded default keeps its generated key: beside the SQLite
/// file of `database_url`, or `None` for an in-memory database.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file.contains(":memory:") {
        return None;
    }
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    Some(dir.join("gatehouse.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_BYTES])
    }

    #[test]
    fn seals_and_opens_and_never_shows_the_secret() {
        let keys = SecretBox::parse(&format!("k1:{}", key(1))).unwrap();
        let owner = Uuid::new_v4();
        let (id, sealed) = keys.seal(owner, b"JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(id, "k1");
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(keys.open(owner, &id, &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        // A fresh nonce each time.
        assert_ne!(
            keys.seal(owner, b"x").unwrap().1,
            keys.seal(owner, b"x").unwrap().1
        );
        assert!(!format!("{keys:?}").contains(&key(1)));
    }

    #[test]
    fn another_owner_or_a_flipped_bit_does_not_open() {
        let keys = SecretBox::parse(&format!("k1:{}", key(1))).unwrap();
        let owner = Uuid::new_v4();
        let (id, sealed) = keys.seal(owner, b"secret").unwrap();
        assert!(keys.open(Uuid::new_v4(), &id, &sealed).is_err());
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        assert!(keys.open(owner, &id, &STANDARD.encode(bytes)).is_err());
    }

    #[test]
    fn rotation_seals_with_the_first_and_opens_with_any() {
        let old = SecretBox::parse(&format!("k1:{}", key(1))).unwrap();
        let owner = Uuid::new_v4();
        let (id, sealed) = old.seal(owner, b"secret").unwrap();
        let rotated = SecretBox::parse(&format!("k2:{}, k1:{}", key(2), key(1))).unwrap();
        assert_eq!(rotated.open(owner, &id, &sealed).unwrap(), b"secret");
        assert_eq!(rotated.seal(owner, b"s").unwrap().0, "k2");
        let dropped = SecretBox::parse(&format!("k2:{}", key(2))).unwrap();
        assert!(dropped.open(owner, &id, &sealed).is_err());
    }

    #[test]
    fn bad_key_text_is_refused_with_a_reason() {
        for bad in ["", "k1", "k1:notbase64!", "k1:AAAA", "bad id:AAAA"] {
            assert!(SecretBox::parse(bad).is_err(), "{bad:?}");
        }
        let twice = format!("k1:{},k1:{}", key(1), key(2));
        assert!(SecretBox::parse(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn the_generated_file_is_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.key");
        let (first, created) = SecretBox::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = SecretBox::load_or_create(&path).unwrap();
        assert!(!created);
        let owner = Uuid::new_v4();
        let (id, sealed) = first.seal(owner, b"s").unwrap();
        assert_eq!(again.open(owner, &id, &sealed).unwrap(), b"s");
    }

    #[test]
    fn the_default_file_sits_beside_the_database() {
        let at = |url| default_key_file(url).map(|p| p.display().to_string());
        assert_eq!(
            at("sqlite://gatehouse.db?mode=rwc").as_deref(),
            Some("gatehouse.key")
        );
        assert_eq!(
            at("sqlite:///data/g.db").as_deref(),
            Some("/data/gatehouse.key")
        );
        assert_eq!(at("sqlite::memory:"), None);
        assert_eq!(at("postgres://u@h/db"), None);
    }
}
