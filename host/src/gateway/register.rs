//! Direct references: recording an object that already sits at a provider
//! (an S3 key, a Supabase object URL) without uploading it again.
//!
//! The adapter recognises the reference (`resolve` in the contract); the
//! caller must be allowed it by `[principals.NAME] references`, checked
//! before anything is asked of the provider so that a refused reference
//! reveals nothing. The digest comes from the provider's metadata where it
//! keeps one, else from reading the object once, else (`hash: false`) the
//! record stays unverified.

use std::sync::Arc;

use futures::StreamExt as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{Caller, GatewayError, new_id, now};
use crate::body::to_hex;
use crate::catalog::ObjectRecord;
use crate::runtime::{Adapter, DownloadSupport, ErrorKind, ObjectInfo};
use crate::validation::names::sanitize;

/// Where a registered file's SHA-256 came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DigestSource {
    /// The provider's metadata; every download checks it.
    Provider,
    /// Wharf read the object once and hashed it.
    Read,
    /// Not hashed (`--no-hash`): downloads cannot be verified.
    None,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Registered {
    #[serde(flatten)]
    pub file: ObjectRecord,
    pub digest_source: DigestSource,
}

impl Caller {
    /// Records the object `reference` names at `provider` (or at the first
    /// provider that recognises the reference), without uploading anything.
    pub async fn register(
        &self,
        reference: &str,
        provider: Option<&str>,
        hash: bool,
    ) -> Result<Registered, GatewayError> {
        let reference = reference.trim();
        check_reference(reference)?;
        if !self.may_register(reference) {
            return Err(GatewayError::ReferenceNotAllowed {
                reference: reference.to_string(),
                principal: self.principal.name.clone(),
            });
        }
        let (adapter, info) = self.resolve_reference(reference, provider).await?;
        let (sha256, size, digest_source) = match (&info.sha256, hash) {
            (Some(sha256), _) => (sha256.clone(), info.size, DigestSource::Provider),
            (None, true) => {
                let (sha256, size) = self.hash_remote(&adapter, &info).await?;
                if info.size.is_some_and(|expected| expected != size) {
                    return Err(GatewayError::InvalidRequest(format!(
                        "{reference}: provider {} said {} bytes but sent {size}",
                        adapter.name(),
                        info.size.unwrap_or_default()
                    )));
                }
                (sha256, Some(size), DigestSource::Read)
            }
            (None, false) => (String::new(), info.size, DigestSource::None),
        };
        let id = new_id();
        let name = sanitize(info.name.as_deref().unwrap_or_else(|| last_segment(&info.remote_id)));
        let record = ObjectRecord {
            sha256: match digest_source {
                DigestSource::None => ObjectRecord::unhashed(&id),
                _ => sha256,
            },
            id,
            principal: self.principal.name.clone(),
            provider: adapter.name().to_string(),
            remote_id: info.remote_id.clone(),
            size: size.unwrap_or_default(),
            mime: info.mime.clone().unwrap_or_else(|| super::upload::guess_mime(&name)),
            name,
            purpose: info.purpose.clone(),
            created_at: now(),
            registered: true,
            verified: digest_source != DigestSource::None,
            ..ObjectRecord::default()
        };
        let id = self.catalog.insert(&record).await?;
        let file = self.catalog.object(&id).await?.ok_or_else(|| GatewayError::UnknownId(id.clone()))?;
        Ok(Registered { file, digest_source })
    }

    /// Whether a pattern of `[principals.NAME] references` allows `reference`.
    fn may_register(&self, reference: &str) -> bool {
        self.config
            .principals
            .get(&self.principal.name)
            .is_some_and(|p| p.references.iter().any(|pattern| glob_matches(pattern, reference)))
    }

    /// The adapter that recognises `reference`, and what it says of the object.
    async fn resolve_reference(
        &self,
        reference: &str,
        provider: Option<&str>,
    ) -> Result<(Arc<Adapter>, ObjectInfo), GatewayError> {
        let candidates: Vec<Arc<Adapter>> = match provider {
            Some(name) => vec![self.adapter(Some(name))?],
            None => self.adapters.load().values().filter(|a| a.capabilities().resolve).cloned().collect(),
        };
        let mut refusals = Vec::new();
        for adapter in candidates {
            if !adapter.capabilities().resolve {
                return Err(GatewayError::Unsupported {
                    what: "registering existing objects".into(),
                    provider: adapter.name().into(),
                });
            }
            match adapter.resolve(reference).await {
                Ok(info) => return Ok((adapter, info)),
                // Not this provider's form: the next may know it.
                Err(e) if provider.is_none() && matches!(e.kind(), Some(ErrorKind::InvalidRequest)) => {
                    refusals.push(e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(GatewayError::InvalidRequest(match refusals.is_empty() {
            true => format!("{reference}: no configured provider can register existing objects"),
            false => format!("{reference}: no provider recognises this reference ({})", refusals.join("; ")),
        }))
    }

    /// Reads the object once, hashing it as it streams.
    async fn hash_remote(&self, adapter: &Adapter, info: &ObjectInfo) -> Result<(String, u64), GatewayError> {
        if adapter.capabilities().download != DownloadSupport::Original {
            return Err(GatewayError::Unsupported {
                what: format!("reading {} to hash it", info.remote_id),
                provider: adapter.name().into(),
            });
        }
        let target = crate::runtime::ObjectRef { remote_id: info.remote_id.clone(), purpose: info.purpose.clone() };
        let (body, _, _) = adapter.download(&target, false, None).await?;
        let mut stream = std::pin::pin!(body.into_stream());
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(GatewayError::Read)?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((to_hex(&hasher.finalize().into()), size))
    }
}

/// Refuses references that could name something other than they seem once
/// a provider normalises them: dot segments and encoded dots or separators.
fn check_reference(reference: &str) -> Result<(), GatewayError> {
    let lower = reference.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    let dot_segment = path.split('/').any(|s| s == "." || s == "..");
    let encoded = ["%2e", "%2f", "%5c"].iter().any(|e| path.contains(e));
    if reference.is_empty() || dot_segment || encoded || reference.chars().any(char::is_control) {
        return Err(GatewayError::InvalidRequest(format!(
            "{reference:?} is not a plain reference: '.' or '..' segments, encoded dots or slashes and control characters are refused"
        )));
    }
    Ok(())
}

fn last_segment(remote_id: &str) -> &str {
    remote_id.rsplit('/').find(|s| !s.is_empty()).unwrap_or(remote_id)
}

/// A glob over a whole reference: `*` matches any run of characters
/// (slashes included, so `s3://b/users/alice/*` covers everything below),
/// `?` one character; everything else matches itself.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, and
    // no pattern can make it explode.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cover_prefixes_and_nothing_else() {
        let allowed = "s3://bucket/users/alice/*";
        assert!(glob_matches(allowed, "s3://bucket/users/alice/a.pdf"));
        assert!(glob_matches(allowed, "s3://bucket/users/alice/deep/b.pdf"));
        assert!(!glob_matches(allowed, "s3://bucket/users/alicex/a.pdf"));
        assert!(!glob_matches(allowed, "s3://bucket/users/bob/a.pdf"));
        assert!(!glob_matches(allowed, "s3://other/users/alice/a.pdf"));
        assert!(glob_matches("docs/?.txt", "docs/a.txt"));
        assert!(!glob_matches("docs/?.txt", "docs/ab.txt"));
        assert!(glob_matches("*", "anything"));
    }

    #[test]
    fn tricky_references_are_refused() {
        for bad in [
            "s3://bucket/users/alice/../bob/x",
            "s3://bucket/users/alice/%2e%2e/bob/x",
            "s3://bucket/users/alice%2F..%2Fbob",
            "s3://bucket/./x",
            "s3://bucket/a\nb",
            "",
        ] {
            assert!(check_reference(bad).is_err(), "{bad:?}");
        }
        assert!(check_reference("s3://bucket/users/alice/a.b..c").is_ok());
    }
}
