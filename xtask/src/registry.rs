//! The one table of everything xtask can download: URLs, sizes and SHA-256 checksums.
//!
//! An entry's URL is `base_url + "/" + file_name`; `--mirror URL` replaces `base_url`.
//! A checksum is recorded only where it was confirmed from a published source (named in
//! [`Artifact::checksum_source`]); an entry without one cannot be installed without
//! `--sha256 HEX` or `--trust-unverified`.

/// One downloadable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// Short name used on the command line and in messages.
    pub name: &'static str,
    /// File name at the source and on disk.
    pub file_name: &'static str,
    /// URL of the folder holding the file (no trailing slash).
    pub base_url: &'static str,
    /// Expected SHA-256, lower-case hex; `None` when no published checksum was confirmed.
    pub sha256: Option<&'static str>,
    /// Known leading hex digits of the SHA-256 when the full checksum is not published
    /// (torchvision's convention: the 8 hex digits in its file names, which `torch.hub`
    /// checks). A weaker check than `sha256`: it catches corrupt or wrong files, not a
    /// deliberately crafted one.
    pub sha256_prefix: Option<&'static str>,
    /// Expected size in bytes, where published.
    pub size: Option<u64>,
    /// Where the checksum (and size) come from.
    pub checksum_source: &'static str,
    /// Licence of the file's content.
    pub license: &'static str,
}

impl Artifact {
    /// The URL to fetch: `base_url/file_name`, or `mirror/file_name` when a mirror is given.
    pub fn url(&self, mirror: Option<&str>) -> String {
        let base = mirror.unwrap_or(self.base_url).trim_end_matches('/');
        format!("{base}/{}", self.file_name)
    }
}

/// efficientnet_pytorch's (github.com/lukemelas/EfficientNet-PyTorch) release `1.0`: Google's
/// TensorFlow-trained EfficientNet-B0..B7 ImageNet weights ported to PyTorch, the weights of
/// the paper (Rippel et al.'s code loads them with `EfficientNet.from_pretrained`). One
/// entry per variant, index = N of `efficientnet-bN`.
///
/// The file names carry the first 8 hex digits of their SHA-256 (torch.hub's naming, which
/// `torch.hub`'s `check_hash` verifies, as for torchvision); no full checksum is published,
/// so that prefix is checked and the pretrained check decides. The file names are those of
/// efficientnet_pytorch's `url_map` (`efficientnet_pytorch/utils.py`).
pub const EFFICIENTNET_PYTORCH: [Artifact; 8] = [
    effnet_pytorch("efficientnet-b0", "efficientnet-b0-355c32eb.pth", "355c32eb"),
    effnet_pytorch("efficientnet-b1", "efficientnet-b1-f1951068.pth", "f1951068"),
    effnet_pytorch("efficientnet-b2", "efficientnet-b2-8bb594d6.pth", "8bb594d6"),
    effnet_pytorch("efficientnet-b3", "efficientnet-b3-5fb5a3c3.pth", "5fb5a3c3"),
    effnet_pytorch("efficientnet-b4", "efficientnet-b4-6ed6700e.pth", "6ed6700e"),
    effnet_pytorch("efficientnet-b5", "efficientnet-b5-b6417697.pth", "b6417697"),
    effnet_pytorch("efficientnet-b6", "efficientnet-b6-c76e70fd.pth", "c76e70fd"),
    effnet_pytorch("efficientnet-b7", "efficientnet-b7-dcc49843.pth", "dcc49843"),
];

const fn effnet_pytorch(
    name: &'static str,
    file_name: &'static str,
    prefix: &'static str,
) -> Artifact {
    Artifact {
        name,
        file_name,
        base_url: "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0",
        sha256: None,
        sha256_prefix: Some(prefix),
        size: None,
        checksum_source: "efficientnet_pytorch's file-name hash prefix (first 8 hex digits of the SHA-256, torch.hub's naming; file names from its utils.py url_map); no full checksum is published",
        license: "Apache-2.0 (EfficientNet-PyTorch; weights ported from Google's TensorFlow EfficientNet release)",
    }
}

/// EfficientNet-B4 (timm `efficientnet_b4`: PyTorch-trained, symmetric padding; export
/// opset 16) from the ONNX Model Zoo, installed as backbone `efficientnet-b4-timm`.
///
/// Whether this export carries ImageNet-trained weights is not known from its source (its
/// export script takes a `pretrained` flag): `download weights` runs the pretrained check
/// ([`crate::pretrained`]) before installing it.
pub const EFFICIENTNET_B4_TIMM: Artifact = Artifact {
    name: "efficientnet-b4-timm",
    file_name: "efficientnet_b4_Opset16.onnx",
    // Git LFS content is served by the media endpoint; pinned to the commit the checksum was read at.
    base_url: "https://media.githubusercontent.com/media/onnx/models/d7a7b063b2e99022c43f3c9e550ad49c560d079a/Computer_Vision/efficientnet_b4_Opset16_timm",
    sha256: Some("61152f54ca5aa4c271cb8dcbfdff4e15aac38b774b80e38418fcce069d1eba06"),
    sha256_prefix: None,
    size: Some(77_233_636),
    checksum_source: "Git LFS pointer of Computer_Vision/efficientnet_b4_Opset16_timm/efficientnet_b4_Opset16.onnx in github.com/onnx/models (commit d7a7b063)",
    license: "Apache-2.0 (ONNX Model Zoo)",
};

/// ResNet-18 (torch hub export, opset 16) from the ONNX Model Zoo.
///
/// Whether this export carries ImageNet-trained weights is not known from its source:
/// `download weights` runs the pretrained check ([`crate::pretrained`]) before installing it.
pub const RESNET18: Artifact = Artifact {
    name: "resnet18",
    file_name: "resnet18_Opset16.onnx",
    base_url: "https://media.githubusercontent.com/media/onnx/models/69d69010b7ed6ba9438c392943d2715026792d40/Computer_Vision/resnet18_Opset16_torch_hub",
    sha256: Some("c1d4d6ca5f18fd516165ed2192bf15a0cb28ac9c02a6c0089249dcdc802f3c86"),
    sha256_prefix: None,
    size: Some(46_748_516),
    checksum_source: "Git LFS pointer of Computer_Vision/resnet18_Opset16_torch_hub/resnet18_Opset16.onnx in github.com/onnx/models (commit 69d69010)",
    license: "Apache-2.0 (ONNX Model Zoo)",
};

/// ResNet-18 from torchvision (`IMAGENET1K_V1`), the second source of ResNet-18 weights: a
/// PyTorch state dict loaded through burn-store (`backbone`'s `WeightsSource::Pytorch`).
///
/// torchvision publishes no full checksum, only the first 8 hex digits of the SHA-256 in the
/// file name (what `torch.hub`'s `check_hash` verifies); that prefix is checked, and the
/// pretrained check is the real gate.
pub const RESNET18_TORCHVISION: Artifact = Artifact {
    name: "resnet18-torchvision",
    file_name: "resnet18-f37072fd.pth",
    base_url: "https://download.pytorch.org/models",
    sha256: None,
    sha256_prefix: Some("f37072fd"),
    size: None,
    checksum_source: "torchvision's file-name hash prefix (first 8 hex digits of the SHA-256, as torch.hub's check_hash verifies); no full checksum is published",
    license: "BSD-3-Clause (torchvision)",
};

/// The full MVTec AD archive (about 4.9 GB), from MVTec's download server.
pub const MVTEC_AD: Artifact = Artifact {
    name: "mvtec-ad",
    file_name: "mvtec_anomaly_detection.tar.xz",
    base_url: "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download/420938113-1629960298",
    sha256: Some("cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"),
    sha256_prefix: None,
    size: None,
    checksum_source: "anomalib's MVTec AD datamodule (DOWNLOAD_INFO.hashsum, SHA-256; src/anomalib/data/datamodules/image/mvtecad.py)",
    license: "CC BY-NC-SA 4.0 (MVTec AD; non-commercial use only)",
};

/// Every artifact, for listing.
pub const ARTIFACTS: &[Artifact] = &[
    EFFICIENTNET_PYTORCH[0],
    EFFICIENTNET_PYTORCH[1],
    EFFICIENTNET_PYTORCH[2],
    EFFICIENTNET_PYTORCH[3],
    EFFICIENTNET_PYTORCH[4],
    EFFICIENTNET_PYTORCH[5],
    EFFICIENTNET_PYTORCH[6],
    EFFICIENTNET_PYTORCH[7],
    EFFICIENTNET_B4_TIMM,
    RESNET18,
    RESNET18_TORCHVISION,
    MVTEC_AD,
];

/// The fifteen MVTec AD categories (top-level folders of the archive).
pub const MVTEC_CATEGORIES: [&str; 15] = [
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
];

/// Looks an artifact up by its [`Artifact::name`].
pub fn artifact(name: &str) -> Option<&'static Artifact> {
    ARTIFACTS.iter().find(|a| a.name == name)
}
