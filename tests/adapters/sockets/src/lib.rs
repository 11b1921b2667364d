//! An adapter that opens its own TCP connection, around the host's allowlist:
//! its component imports `wasi:sockets`, which the host refuses to load.

use wharf_adapter_sdk::{
    Capabilities, DownloadSupport, ObjectInfo, Provider, ProviderError, UploadRequest, export_adapter,
};

struct Sockets;

impl Provider for Sockets {
    const NAME: &'static str = "sockets";

    fn init(_config_json: &str) -> Result<Capabilities, ProviderError> {
        Ok(Capabilities {
            download: DownloadSupport::None,
            stat: false,
            list: false,
            delete: false,
            presign: false,
            resumable_upload: false,
            persistent: false,
            max_size: None,
            ranged_download: false,
            resolve: false,
        })
    }

    fn upload(_req: UploadRequest) -> Result<ObjectInfo, ProviderError> {
        let connected = std::net::TcpStream::connect("192.0.2.1:80");
        Err(ProviderError::invalid(format!("connected on its own: {}", connected.is_ok())))
    }
}

export_adapter!(Sockets);
