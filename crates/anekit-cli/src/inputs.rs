//! Inputs for `run` and `bench`: from `.npy` files, images (`.png`, `.jpg`), random, or the
//! bundled sample.
//!
//! An image file given for an image input of the model (`imageType` in its description) is
//! decoded with the `image` crate (PNG and JPEG decoders only), resized to the input's
//! size if it differs (bilinear), and passed as `fp32 [1, C, H, W]` pixel values 0–255 in the
//! input's colour order (RGB, BGR or grayscale): the tensor Core ML makes from a
//! `CVPixelBuffer` before the model's own preprocessing (a NeuralNetwork's scaler or mean
//! image, an ML Program's first ops), which the model then applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anekit_runtime::{FeatureSpec, NamedTensors, Tensor};
use anyhow::{Context, Result, bail};

/// The colour layout of an image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageColor {
    /// 3 channels, red first.
    Rgb,
    /// 3 channels, blue first.
    Bgr,
    /// 1 channel (`GRAYSCALE` and `GRAYSCALE_FLOAT16`).
    Gray,
}

/// An image input of a model: colour layout and the default size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    /// Colour layout.
    pub color: ImageColor,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The image inputs of the model at `path`, by name (from its description; empty if it has
/// none or cannot be read — the load reports that).
pub fn image_specs(path: &Path) -> BTreeMap<String, ImageSpec> {
    use anekit_format::proto::{feature_type::Type as FT, image_feature_type::ColorSpace};
    let Ok(asset) = anekit_format::asset::ModelAsset::open(path) else {
        return BTreeMap::new();
    };
    let desc = asset
        .spec
        .and_then(|s| s.description)
        .or_else(|| asset.coremldata.and_then(|c| c.description));
    let mut out = BTreeMap::new();
    for f in desc.map(|d| d.input).unwrap_or_default() {
        if let Some(FT::ImageType(i)) = f.r#type.and_then(|t| t.r#type) {
            let color = match ColorSpace::try_from(i.color_space) {
                Ok(ColorSpace::Bgr) => ImageColor::Bgr,
                Ok(ColorSpace::Grayscale | ColorSpace::GrayscaleFloat16) => ImageColor::Gray,
                _ => ImageColor::Rgb,
            };
            let (Ok(width), Ok(height)) = (u32::try_from(i.width), u32::try_from(i.height)) else {
                continue;
            };
            out.insert(
                f.name,
                ImageSpec {
                    color,
                    width,
                    height,
                },
            );
        }
    }
    out
}

/// Whether a file is read as an image (by extension).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Decode `path` for an image input: `fp32 [1, C, H, W]` pixel values in the input's
/// colour order, resized (bilinear) to its size if needed. Returns the tensor and a note
/// when the image was resized or converted.
pub fn read_image(path: &Path, spec: &ImageSpec) -> Result<(Tensor, Option<String>)> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?
        .decode()
        .with_context(|| format!("cannot decode image {}", path.display()))?;
    let (w, h) = (spec.width, spec.height);
    let mut note = None;
    let img = if img.width() != w || img.height() != h {
        note = Some(format!(
            "resized {}x{} to the input's {w}x{h} (bilinear)",
            img.width(),
            img.height()
        ));
        img.resize_exact(w, h, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let (wu, hu) = (w as usize, h as usize);
    let plane = wu * hu;
    let data: Vec<f32> = match spec.color {
        ImageColor::Gray => img
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(f32::from)
            .collect(),
        ImageColor::Rgb | ImageColor::Bgr => {
            let rgb = img.to_rgb8().into_raw();
            let mut d = vec![0f32; 3 * plane];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    let ch = if spec.color == ImageColor::Bgr {
                        2 - c
                    } else {
                        c
                    };
                    d[ch * plane + i] = f32::from(v);
                }
            }
            d
        }
    };
    let channels = if spec.color == ImageColor::Gray { 1 } else { 3 };
    Ok((Tensor::f32(&[1, channels, hu, wu], data)?, note))
}

/// `NAME=FILE.npy` pairs.
#[derive(Debug, Clone)]
pub struct InputArg {
    /// Input name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

impl std::str::FromStr for InputArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=FILE.npy or NAME=IMAGE.png, got {s:?}"))?;
        if name.is_empty() || path.is_empty() {
            return Err(format!(
                "expected NAME=FILE.npy or NAME=IMAGE.png, got {s:?}"
            ));
        }
        Ok(Self {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

pub use anekit::inputs::Rng;

/// Random values for one input of its default shape ([`anekit::inputs::random_input`]).
pub fn random_input(spec: &FeatureSpec, rng: &mut Rng, int_high: i32) -> Result<Tensor> {
    anekit::inputs::random_input(spec, rng, int_high)
        .with_context(|| format!("input {:?}: give --input {}=FILE.npy", spec.name, spec.name))
}

/// Gather the inputs a model needs: files given on the command line, then random values
/// (with `random`) or the bundled sample for the bundled model; anything still missing is an
/// error listing what the model takes.
pub fn gather(
    specs: &[FeatureSpec],
    images: &BTreeMap<String, ImageSpec>,
    given: &[InputArg],
    random: bool,
    seed: u64,
    int_high: i32,
    sample: Option<&NamedTensors>,
) -> Result<(NamedTensors, Vec<String>)> {
    let mut out = NamedTensors::new();
    let mut notes = Vec::new();
    for g in given {
        let spec = specs.iter().find(|s| s.name == g.name).with_context(|| {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            format!(
                "the model has no input {:?} (its inputs: {})",
                g.name,
                names.join(", ")
            )
        })?;
        let t = if is_image_file(&g.path) {
            // An image for an image input, or for a [1, 3|1, H, W] tensor input.
            let im = match images.get(&g.name) {
                Some(i) => *i,
                None => match spec.shape.default_shape() {
                    &[1, c @ (1 | 3), h, w] => {
                        notes.push(format!(
                            "{}: not an image input; {} decoded as {} pixel values 0-255",
                            g.name,
                            g.path.display(),
                            if c == 1 { "grayscale" } else { "RGB" }
                        ));
                        ImageSpec {
                            color: if c == 1 {
                                ImageColor::Gray
                            } else {
                                ImageColor::Rgb
                            },
                            width: u32::try_from(w).unwrap_or(u32::MAX),
                            height: u32::try_from(h).unwrap_or(u32::MAX),
                        }
                    }
                    other => bail!(
                        "input {:?} takes a tensor of shape {other:?}, not an image ({})",
                        g.name,
                        g.path.display()
                    ),
                },
            };
            let (t, note) = read_image(&g.path, &im)?;
            if let Some(n) = note {
                notes.push(format!("{}: {n}", g.name));
            }
            t
        } else {
            anekit_runtime::npy::read(&g.path)?
        };
        let t = if t.dtype() == spec.dtype {
            t
        } else {
            notes.push(format!(
                "{}: converted {} from {} to {}",
                g.name,
                g.path.display(),
                t.dtype(),
                spec.dtype
            ));
            t.cast(spec.dtype)
        };
        out.insert(g.name.clone(), t);
    }
    let mut rng = Rng::new(seed);
    for spec in specs {
        if out.contains_key(&spec.name) {
            continue;
        }
        if let Some(t) = sample.and_then(|s| s.get(&spec.name)) {
            out.insert(spec.name.clone(), t.clone());
            notes.push(format!("{}: the bundled sample input", spec.name));
        } else if random {
            out.insert(spec.name.clone(), random_input(spec, &mut rng, int_high)?);
            notes.push(format!(
                "{}: random {} {:?} (seed {seed})",
                spec.name,
                spec.dtype,
                spec.shape.default_shape()
            ));
        } else {
            let all: Vec<String> = specs
                .iter()
                .map(|s| format!("{} ({} {:?})", s.name, s.dtype, s.shape.default_shape()))
                .collect();
            bail!(
                "no value for input {:?}: give --input {}=FILE.npy or --random (the model's inputs: {})",
                spec.name,
                spec.name,
                all.join(", ")
            );
        }
    }
    Ok((out, notes))
}

/// min, max, mean and the first few values of a tensor, for printing.
pub fn describe(t: &Tensor) -> String {
    match t {
        Tensor::Str(a) => {
            let head: Vec<String> = a.iter().take(5).map(|v| format!("{v:?}")).collect();
            return if a.len() == 1 {
                head.join("")
            } else {
                format!(
                    "[{}{}]",
                    head.join(", "),
                    if a.len() > 5 { ", …" } else { "" }
                )
            };
        }
        Tensor::Dict(d) => {
            let e = d.entries();
            let head: Vec<String> = e
                .iter()
                .take(10)
                .map(|(k, v)| format!("{k}: {v:.4}"))
                .collect();
            return format!(
                "{{{}{}}}",
                head.join(", "),
                if e.len() > 10 { ", …" } else { "" }
            );
        }
        _ => {}
    }
    let f = t.to_f32();
    let n = f.len();
    if n == 0 {
        return "(empty)".into();
    }
    let (mut lo, mut hi, mut sum, mut nonfinite) = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0usize);
    for &v in f.iter() {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += f64::from(v);
        } else {
            nonfinite += 1;
        }
    }
    let head: Vec<String> = f.iter().take(5).map(|v| format!("{v:.4}")).collect();
    let mut s = format!(
        "min {lo:.4}  max {hi:.4}  mean {:.4}  [{}{}]",
        sum / (n - nonfinite).max(1) as f64,
        head.join(", "),
        if n > 5 { ", …" } else { "" }
    );
    if nonfinite > 0 {
        s.push_str(&format!("  ({nonfinite} non-finite)"));
    }
    s
}
