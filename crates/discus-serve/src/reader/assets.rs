//! The viewer bundle (`web/dist/`, built by `web/build.sh`), embedded in the binary so nothing is
//! fetched at run time.

/// One embedded file: its name under `/reader/`, content type and bytes.
pub struct Asset {
    /// The file name (`index.html`, `app.js`, ...).
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The file.
    pub bytes: &'static [u8],
}

/// Every file of the bundle.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../../../web/dist/index.html"),
    },
    Asset {
        name: "reader.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../../web/dist/reader.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../web/dist/app.js"),
    },
    Asset {
        name: "decodeImageFrameWorker.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../web/dist/decodeImageFrameWorker.js"),
    },
    Asset {
        name: "charlswasm_decode.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../../../../web/dist/charlswasm_decode.wasm"),
    },
];

/// The asset named `name`, if the bundle has it.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
