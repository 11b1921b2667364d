//! An adapter that misbehaves in the way its config asks, on every operation:
//! `spin` loops forever, `hog` allocates without bound, `escape` calls a host
//! outside its allowlist, `stall` calls an allowed host that never answers.

use serde::Deserialize;
use wharf_adapter_sdk::http::{Request, RequestBody};
use wharf_adapter_sdk::{
    ByteRange, Capabilities, DownloadResult, DownloadSupport, ObjectInfo, ObjectRef, Page, Provider, ProviderError,
    UploadRequest, config, export_adapter, http,
};

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Behaviour {
    Spin,
    Hog,
    Escape,
    Stall,
}

#[derive(Deserialize)]
struct Config {
    behaviour: Behaviour,
    #[serde(default)]
    url: String,
}

static CONFIG: config::Slot<Config> = config::Slot::new();

fn misbehave() -> Result<ObjectInfo, ProviderError> {
    let config = CONFIG.get()?;
    match config.behaviour {
        Behaviour::Spin => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Behaviour::Hog => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Behaviour::Escape | Behaviour::Stall => {
            let response = http::send(Request {
                method: "GET".into(),
                url: config.url.clone(),
                headers: vec![],
                body: RequestBody::Empty,
            })?;
            Err(ProviderError::invalid(format!("got through: HTTP {}", response.status)))
        }
    }
}

struct Hostile;

impl Provider for Hostile {
    const NAME: &'static str = "hostile";

    fn init(config_json: &str) -> Result<Capabilities, ProviderError> {
        CONFIG.set(config::parse(config_json)?);
        Ok(Capabilities {
            download: DownloadSupport::Original,
            stat: true,
            list: true,
            delete: true,
            presign: false,
            resumable_upload: false,
            persistent: true,
            max_size: None,
            ranged_download: true,
            resolve: true,
        })
    }
    fn upload(_req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        misbehave()
    }
    fn download(
        _target: &ObjectRef,
        _derived: bool,
        _range: Option<&ByteRange>,
    ) -> Result<DownloadResult, ProviderError> {
        misbehave().map(|_| unreachable!())
    }
    fn resolve(_reference: &str) -> Result<ObjectInfo, ProviderError> {
        misbehave()
    }
    fn stat(_target: &ObjectRef) -> Result<ObjectInfo, ProviderError> {
        misbehave()
    }
    fn list(_cursor: Option<&str>, _limit: u32) -> Result<Page, ProviderError> {
        misbehave().map(|_| unreachable!())
    }
    fn delete(_target: &ObjectRef) -> Result<(), ProviderError> {
        misbehave().map(|_| ())
    }
    fn presign(_target: &ObjectRef, _expires_in_secs: u64) -> Result<String, ProviderError> {
        misbehave().map(|_| unreachable!())
    }
}

export_adapter!(Hostile);
