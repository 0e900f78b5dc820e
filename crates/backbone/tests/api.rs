//! API behaviour: errors, devices, levels, streaming, image loading.

use std::path::PathBuf;

use backbone::{
    Architecture, BackboneError, BackboneName, BackboneSpec, Device, EfficientNetConfig,
    FeatureExtractor, Preprocess, WeightsSource, load_image, preprocess, resize_bilinear_pil,
};
use image::{ImageBuffer, Luma, Rgb, RgbImage};
use ndarray::{Array4, Axis, stack};
use proptest::prelude::*;

fn dev(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/dev")
        .join(rel)
}

fn lite0_onnx() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("weights/efficientnet-lite0/efficientnet-lite0.onnx")
}

#[test]
fn names_defaults_and_levels() {
    let l0: BackboneSpec = "efficientnet-lite0".parse().unwrap();
    assert_eq!(
        (
            l0.default_input_size(),
            l0.default_levels(),
            l0.num_levels()
        ),
        (224, vec![3, 4, 5, 6, 7], 9)
    );
    let b4: BackboneSpec = "efficientnet-b4".parse().unwrap();
    assert_eq!(
        (
            b4.default_input_size(),
            b4.default_levels(),
            b4.num_levels()
        ),
        (380, vec![3, 4, 5, 6, 7], 9)
    );
    let r18: BackboneSpec = "resnet18".parse().unwrap();
    assert_eq!(
        (
            r18.default_input_size(),
            r18.default_levels(),
            r18.num_levels()
        ),
        (224, vec![0, 1, 2, 3], 5)
    );
    for n in BackboneName::all() {
        assert_eq!(n.as_str().parse::<BackboneName>().unwrap(), n);
        let s = BackboneSpec::from_name(n);
        assert_eq!(s.all_level_shapes(s.input_size).len(), s.num_levels());
    }
    assert!(matches!(
        "vgg16".parse::<BackboneSpec>(),
        Err(BackboneError::UnknownBackbone(..))
    ));
    // Known level shapes (B4 at 380: timm feature_info channels 24/32/56/112/160/272/448).
    assert_eq!(
        b4.all_level_shapes(380),
        vec![
            (48, 190, 190),
            (24, 190, 190),
            (32, 95, 95),
            (56, 48, 48),
            (112, 24, 24),
            (160, 24, 24),
            (272, 12, 12),
            (448, 12, 12),
            (1792, 12, 12)
        ]
    );
    assert_eq!(
        r18.all_level_shapes(224),
        vec![
            (64, 56, 56),
            (64, 56, 56),
            (128, 28, 28),
            (256, 14, 14),
            (512, 7, 7)
        ]
    );
    let w50: BackboneSpec = "wide-resnet50".parse().unwrap();
    assert_eq!(w50.all_level_shapes(224)[4], (2048, 7, 7));
}

#[test]
fn devices_parse_and_cuda_is_a_clean_error_without_feature() {
    assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
    assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
    assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
    assert!("cuda:x".parse::<Device>().is_err());
    assert!("tpu".parse::<Device>().is_err());
    assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    if !Device::cuda_compiled() {
        let e = FeatureExtractor::new(
            "efficientnet-lite0".parse().unwrap(),
            WeightsSource::Embedded,
            &[3],
            Preprocess::new(224),
            Device::Cuda(0),
        )
        .unwrap_err();
        assert!(matches!(e, BackboneError::Device { .. }), "{e}");
    }
}

#[test]
fn bad_levels_and_missing_weights_are_errors() {
    let spec: BackboneSpec = "efficientnet-lite0".parse().unwrap();
    for lv in [vec![], vec![9], vec![3, 3]] {
        let e = FeatureExtractor::new(
            spec.clone(),
            WeightsSource::Embedded,
            &lv,
            Preprocess::new(224),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(matches!(e, BackboneError::Levels { .. }), "{e}");
    }
    let e = FeatureExtractor::new(
        "resnet18".parse().unwrap(),
        WeightsSource::Embedded,
        &[0],
        Preprocess::new(224),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(e, BackboneError::NoWeights { .. }), "{e}");
    let e = FeatureExtractor::new(
        spec.clone(),
        WeightsSource::Embedded,
        &[3],
        Preprocess::new(224).with_center_crop(Some(300)),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(e, BackboneError::Preprocess(_)), "{e}");
}

#[test]
fn mismatched_or_broken_onnx_files_name_the_file_and_parameter() {
    // Wrong network: convolution count differs.
    let e = FeatureExtractor::new(
        "resnet18".parse().unwrap(),
        WeightsSource::Onnx(lite0_onnx()),
        &[0],
        Preprocess::new(224),
        Device::Cpu,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, BackboneError::WeightsMismatch { .. })
            && msg.contains("efficientnet-lite0.onnx")
            && msg.contains("Conv nodes"),
        "{msg}"
    );
    // Same count, other widths: the first mismatching parameter with both shapes.
    let mut cfg = EfficientNetConfig::lite(1.0, 1.0);
    cfg.stem_channels = 40;
    let spec = BackboneSpec::custom("lite0-wide-stem", Architecture::EfficientNet(cfg), 224);
    let msg = FeatureExtractor::new(
        spec,
        WeightsSource::Onnx(lite0_onnx()),
        &[0],
        Preprocess::new(224),
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("conv_stem.weight")
            && msg.contains("[40, 3, 3, 3]")
            && msg.contains("[32, 3, 3, 3]"),
        "{msg}"
    );
    // Truncated and missing files.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(lite0_onnx()).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = FeatureExtractor::new(
        "efficientnet-lite0".parse().unwrap(),
        WeightsSource::Onnx(cut),
        &[0],
        Preprocess::new(224),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(e, BackboneError::WeightsFile { .. }) && e.to_string().contains("cut.onnx"),
        "{e}"
    );
    let e = FeatureExtractor::new(
        "efficientnet-lite0".parse().unwrap(),
        WeightsSource::Onnx(dir.path().join("none.onnx")),
        &[0],
        Preprocess::new(224),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(e.to_string().contains("none.onnx"), "{e}");
}

#[test]
fn images_load_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Greyscale -> RGB replicated.
    let g = load_image(dev("brick/train/good/000.png")).unwrap();
    assert!(g.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    // 16-bit greyscale PNG -> 8 bits, round(v / 257).
    let p16 = dir.path().join("g16.png");
    ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(4, 2, |x, y| Luma([(x * 20000 + y * 300) as u16]))
        .save(&p16)
        .unwrap();
    let img = load_image(&p16).unwrap();
    for (x, y, p) in img.enumerate_pixels() {
        let v = (x * 20000 + y * 300) as f64;
        assert_eq!(p[0], (v / 257.0).round() as u8);
    }
    // TIFF.
    let tif = dir.path().join("a.tiff");
    RgbImage::from_pixel(5, 5, Rgb([1, 2, 3]))
        .save(&tif)
        .unwrap();
    assert_eq!(load_image(&tif).unwrap().get_pixel(2, 2), &Rgb([1, 2, 3]));
    // Truncated PNG, text file, missing file: errors naming the file.
    let png = std::fs::read(dev("carpet/train/good/000.png")).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &png[..png.len() / 2]).unwrap();
    let txt = dir.path().join("notes.png");
    std::fs::write(&txt, "not an image").unwrap();
    for p in [cut, txt, dir.path().join("missing.png")] {
        let e = load_image(&p).unwrap_err();
        assert!(matches!(e, BackboneError::Image { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(p.file_name().unwrap().to_str().unwrap()),
            "{e}"
        );
    }
}

#[test]
fn extract_checks_input_and_streams_paths() {
    let spec: BackboneSpec = "efficientnet-lite0".parse().unwrap();
    let pre = Preprocess::new(96).with_center_crop(Some(64));
    let fx =
        FeatureExtractor::new(spec, WeightsSource::Embedded, &[3, 0], pre, Device::Cpu).unwrap();
    assert_eq!(fx.level_shapes(), vec![(40, 8, 8), (32, 32, 32)]);
    assert_eq!(fx.identity().input_size, 64);
    assert!(matches!(
        fx.extract(Array4::zeros((1, 3, 96, 96)).view()),
        Err(BackboneError::Input(_))
    ));
    let mut nan = Array4::zeros((1, 3, 64, 64));
    nan[[0, 1, 2, 3]] = f32::NAN;
    assert!(matches!(
        fx.extract(nan.view()),
        Err(BackboneError::Input(_))
    ));

    let paths: Vec<PathBuf> = [
        "carpet/train/good/001.png",
        "grass/train/good/001.png",
        "parts/train/good/001.png",
    ]
    .iter()
    .map(|p| dev(p))
    .collect();
    let batches: Vec<_> = fx
        .extract_paths(&paths, 2)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].paths, paths[..2].to_vec());
    assert_eq!(batches[1].images[0].dimensions(), (64, 64));
    let arrays: Vec<_> = paths
        .iter()
        .map(|p| preprocess(&load_image(p).unwrap(), &pre))
        .collect();
    let views: Vec<_> = arrays[..2].iter().map(|a| a.view()).collect();
    let direct = fx.extract(stack(Axis(0), &views).unwrap().view()).unwrap();
    assert_eq!(direct, batches[0].levels);
    // A bad file fails its batch only, naming the file.
    let mut bad = paths.clone();
    bad.insert(0, dev("does/not/exist.png"));
    let res: Vec<_> = fx.extract_paths(&bad, 2).collect();
    assert_eq!(res.len(), 2);
    assert!(
        res[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("exist.png")
    );
    assert!(res[1].is_ok());
    assert!(fx.extract_paths(&paths, 0).next().unwrap().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn resize_keeps_constant_images_constant(w in 1u32..80, h in 1u32..80, ow in 1u32..80, oh in 1u32..80, v in any::<[u8; 3]>()) {
        let img = RgbImage::from_pixel(w, h, Rgb(v));
        let r = resize_bilinear_pil(&img, ow, oh);
        prop_assert_eq!(r.dimensions(), (ow, oh));
        prop_assert!(r.pixels().all(|p| p.0 == v));
    }

    #[test]
    fn device_display_round_trips(n in 0usize..64) {
        for d in [Device::Cpu, Device::Cuda(n)] {
            prop_assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
    }
}

#[test]
fn extractor_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<FeatureExtractor>();
}
