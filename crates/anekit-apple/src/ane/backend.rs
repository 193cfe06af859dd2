//! The direct Neural Engine backend over the private AppleNeuralEngine framework (macOS,
//! cargo feature `private-ane`; type-checked, not run).
//!
//! Sequence (docs/references.md#compile-load-evaluate): `+[_ANEInMemoryModelDescriptor
//! modelWithMILText:weights:optionsPlist:]` → `+[_ANEInMemoryModel
//! inMemoryModelWithDescriptor:]` → stage `model.mil` and `weights/weight.bin` under
//! `NSTemporaryDirectory()/<hexStringIdentifier>/` → `-compileWithQoS:options:error:` (skipped
//! when the system still has the compiled program, `-compiledModelExists`) →
//! `-loadWithQoS:options:error:` → per tensor one IOSurface wrapped by
//! `+[_ANEIOSurfaceObject objectWithIOSurface:]` → one `_ANERequest` reused for every
//! prediction → `-evaluateWithQoS:options:request:error:`; `-unloadWithQoS:error:` on drop.
//! Every selector is checked ([`crate::private::require`]) before the first message.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anekit_mil::model::Model;
use anekit_mil::summary::ModelSummary;
use anekit_runtime::engine::{
    Availability, Backend, BackendKind, FeatureSpec, LoadOptions, ModelInstance, NamedTensors,
    ShapeSpec, State,
};
use anekit_runtime::{ElementType, RuntimeError, Tensor};
use half::f16;
use ndarray::{ArrayD, IxDyn};
use objc2::rc::{Retained, autoreleasepool};
use objc2::runtime::{AnyClass, AnyObject, Sel};
use objc2::{msg_send, sel};
use objc2_core_foundation::{CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_foundation::{
    NSArray, NSData, NSDictionary, NSError, NSNumber, NSString, NSTemporaryDirectory,
};
use objc2_io_surface::{
    IOSurfaceLockOptions, IOSurfaceRef, kIOSurfaceAllocSize, kIOSurfaceBytesPerElement,
    kIOSurfaceBytesPerRow, kIOSurfaceHeight, kIOSurfacePixelFormat, kIOSurfaceWidth,
};

use super::{AneStage, CacheEntry, CacheIndex, CompileBudget, Exported, WEIGHT_FILE, export, hint};
use crate::error::{AppleError, Result};
use crate::private::{class, require};
use crate::probe::{BOOL, OBJ, PTR, Signature, UINT};

/// QoS passed to compile, load, evaluate and unload (`QOS_CLASS_DEFAULT`; every value 0–63
/// behaves alike, docs/references.md#observed-behaviour-and-failures).
const QOS: u32 = 21;

const ARGS_NONE: &[&[&str]] = &[];
const ARGS_OBJ: &[&[&str]] = &[OBJ];
const ARGS_OBJ3: &[&[&str]] = &[OBJ, OBJ, OBJ];
const ARGS_OBJ7: &[&[&str]] = &[OBJ, OBJ, OBJ, OBJ, OBJ, OBJ, OBJ];
const ARGS_PTR: &[&[&str]] = &[PTR];
const ARGS_QOS_OPTS_ERR: &[&[&str]] = &[UINT, OBJ, PTR];
const ARGS_QOS_OPTS_REQ_ERR: &[&[&str]] = &[UINT, OBJ, OBJ, PTR];
const ARGS_QOS_ERR: &[&[&str]] = &[UINT, PTR];

/// The private classes, checked once.
struct Api {
    descriptor: &'static AnyClass,
    model: &'static AnyClass,
    request: &'static AnyClass,
    surface: &'static AnyClass,
}

fn api() -> Result<Api> {
    let descriptor = class(c"_ANEInMemoryModelDescriptor")?;
    let model = class(c"_ANEInMemoryModel")?;
    let request = class(c"_ANERequest")?;
    let surface = class(c"_ANEIOSurfaceObject")?;
    let checks: [(&AnyClass, Sel, Signature); 10] = [
        (
            descriptor,
            sel!(modelWithMILText:weights:optionsPlist:),
            Signature {
                class_method: true,
                returns: OBJ,
                args: ARGS_OBJ3,
            },
        ),
        (
            model,
            sel!(inMemoryModelWithDescriptor:),
            Signature {
                class_method: true,
                returns: OBJ,
                args: ARGS_OBJ,
            },
        ),
        (
            model,
            sel!(hexStringIdentifier),
            Signature {
                class_method: false,
                returns: OBJ,
                args: ARGS_NONE,
            },
        ),
        (
            model,
            sel!(compiledModelExists),
            Signature {
                class_method: false,
                returns: BOOL,
                args: ARGS_NONE,
            },
        ),
        (
            model,
            sel!(compileWithQoS:options:error:),
            Signature {
                class_method: false,
                returns: BOOL,
                args: ARGS_QOS_OPTS_ERR,
            },
        ),
        (
            model,
            sel!(loadWithQoS:options:error:),
            Signature {
                class_method: false,
                returns: BOOL,
                args: ARGS_QOS_OPTS_ERR,
            },
        ),
        (
            model,
            sel!(evaluateWithQoS:options:request:error:),
            Signature {
                class_method: false,
                returns: BOOL,
                args: ARGS_QOS_OPTS_REQ_ERR,
            },
        ),
        (
            model,
            sel!(unloadWithQoS:error:),
            Signature {
                class_method: false,
                returns: BOOL,
                args: ARGS_QOS_ERR,
            },
        ),
        (
            surface,
            sel!(objectWithIOSurface:),
            Signature {
                class_method: true,
                returns: OBJ,
                args: ARGS_PTR,
            },
        ),
        (
            request,
            sel!(requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:),
            Signature {
                class_method: true,
                returns: OBJ,
                args: ARGS_OBJ7,
            },
        ),
    ];
    for (cls, sel, sig) in &checks {
        require(cls, *sel, sig)?;
    }
    Ok(Api {
        descriptor,
        model,
        request,
        surface,
    })
}

fn ane_error(stage: AneStage, e: Option<&NSError>) -> AppleError {
    let (domain, code, description) = match e {
        Some(e) => (
            e.domain().to_string(),
            e.code() as i64,
            e.localizedDescription().to_string(),
        ),
        None => (
            String::new(),
            0,
            "the call failed without an error".to_string(),
        ),
    };
    let hint = hint(stage, &description);
    AppleError::Ane {
        stage,
        domain,
        code,
        description,
        hint,
    }
}

/// The direct Neural Engine backend.
#[derive(Debug, Clone)]
pub struct AneBackend {
    budget: CompileBudget,
    index: CacheIndex,
}

impl Default for AneBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl AneBackend {
    /// The backend with the budget from the environment and the default cache index.
    pub fn new() -> Self {
        Self {
            budget: CompileBudget::from_env(),
            index: CacheIndex::default_location(),
        }
    }

    /// The backend with an explicit budget and cache index.
    pub fn with(budget: CompileBudget, index: CacheIndex) -> Self {
        Self { budget, index }
    }
}

impl Backend for AneBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ane
    }

    fn availability(&self) -> Availability {
        match api() {
            Ok(_) => Availability::Available,
            Err(e) => Availability::Unavailable(e.to_string()),
        }
    }

    fn load(
        &self,
        model: Arc<Model>,
        options: &LoadOptions,
    ) -> anekit_runtime::Result<Box<dyn ModelInstance>> {
        Ok(Box::new(AneModel::load(self, &model, options)?))
    }
}

/// One tensor's IOSurface.
struct Surface {
    surface: CFRetained<IOSurfaceRef>,
    spec: FeatureSpec,
    shape: Vec<usize>,
    bytes: usize,
}

fn element_size(t: ElementType) -> Option<usize> {
    match t {
        ElementType::F16 => Some(2),
        ElementType::F32 => Some(4),
        _ => None,
    }
}

/// The fixed shape of an I/O tensor, checked for the flat IOSurface layout used here: fp16
/// or fp32, and a last axis whose bytes are a multiple of 64 (the Neural Engine's row
/// alignment; docs/references.md#last-axis-alignment).
fn io_layout(spec: &FeatureSpec) -> Result<(Vec<usize>, usize)> {
    let what = || format!("tensor {:?} for the Neural Engine", spec.name);
    let ShapeSpec::Fixed { shape } = &spec.shape else {
        return Err(AppleError::invalid(what(), "needs a fixed shape"));
    };
    let elem = element_size(spec.dtype).ok_or_else(|| {
        AppleError::invalid(
            what(),
            format!("is {}; the direct path exchanges fp16 or fp32", spec.dtype),
        )
    })?;
    let last = *shape
        .last()
        .ok_or_else(|| AppleError::invalid(what(), "is a scalar"))?;
    if (last * elem) % 64 != 0 {
        return Err(AppleError::invalid(
            what(),
            format!(
                "its last axis ({last} × {elem} bytes) must be a multiple of 64 bytes; reshape to [1, C, 1, S]"
            ),
        ));
    }
    if last < 64 {
        tracing::warn!(tensor = %spec.name, last, "last axis under 64 elements: evaluation may fail with status 0x1d");
    }
    Ok((shape.clone(), shape.iter().product::<usize>() * elem))
}

fn surface(bytes: usize) -> Result<CFRetained<IOSurfaceRef>> {
    let n = |v: usize| CFNumber::new_i64(v as i64);
    // SAFETY: the keys are constants of IOSurface.framework.
    let keys: [&CFString; 6] = unsafe {
        [
            kIOSurfaceWidth,
            kIOSurfaceHeight,
            kIOSurfaceBytesPerElement,
            kIOSurfaceBytesPerRow,
            kIOSurfaceAllocSize,
            kIOSurfacePixelFormat,
        ]
    };
    let values = [n(bytes), n(1), n(1), n(bytes), n(bytes), n(0)];
    let value_refs: Vec<&CFType> = values.iter().map(|v| (**v).as_ref()).collect();
    let props = CFDictionary::<CFString, CFType>::from_slices(&keys, &value_refs);
    // SAFETY: a dictionary of IOSurface property keys to CFNumbers: a flat byte buffer
    // (width = bytes, height 1, 1 byte per element), as docs/references.md#compile-load-evaluate step 5.
    unsafe { IOSurfaceRef::new(props.as_opaque()) }
        .ok_or_else(|| AppleError::null("IOSurfaceCreate", format!("{bytes} bytes")))
}

fn tensor_bytes(t: &Tensor, dtype: ElementType) -> Vec<u8> {
    match (t, dtype) {
        (Tensor::F16(a), ElementType::F16) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        (Tensor::F32(a), ElementType::F32) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        (other, ElementType::F16) => other
            .to_f32()
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        (other, _) => other
            .to_f32()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

/// The framework objects of a loaded program.
struct Loaded {
    model: Retained<AnyObject>,
    request: Retained<AnyObject>,
    inputs: Vec<Surface>,
    outputs: Vec<Surface>,
    staging: PathBuf,
}

struct SendLoaded(Loaded);

// SAFETY: the framework objects are reference-counted Objective-C/CF objects not bound to a
// thread (maderix/ANE and the `ane` crate drive them from worker threads); every use goes
// through the `Mutex` in `AneModel`, so requests and IOSurfaces are never used concurrently.
unsafe impl Send for SendLoaded {}

/// A program compiled and loaded on the Neural Engine.
pub struct AneModel {
    loaded: Mutex<SendLoaded>,
    function: String,
    inputs: Vec<FeatureSpec>,
    outputs: Vec<FeatureSpec>,
    key: String,
}

impl std::fmt::Debug for AneModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AneModel")
            .field("function", &self.function)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Specs in the order of the function's signature (inputs) and its block outputs: the order
/// of the program's symbols, which the request's indices refer to.
fn ordered_specs(model: &Model, function: &str) -> Result<(Vec<FeatureSpec>, Vec<FeatureSpec>)> {
    let crate::coreml::IoSpecs {
        inputs,
        outputs,
        states,
        ..
    } = crate::coreml::io_specs(model, Some(function))?;
    if !states.is_empty() {
        return Err(AppleError::invalid(
            format!("function {function:?}"),
            "stateful programs are not supported by the direct path",
        ));
    }
    let program = model
        .require_program()
        .map_err(|e| AppleError::invalid("model", e.to_string()))?;
    let f = program
        .functions
        .get(function)
        .ok_or_else(|| AppleError::invalid("function", format!("no function {function:?}")))?;
    let pick = |names: Vec<&str>, specs: &[FeatureSpec], what: &str| -> Result<Vec<FeatureSpec>> {
        names
            .into_iter()
            .map(|n| {
                specs.iter().find(|s| s.name == n).cloned().ok_or_else(|| {
                    AppleError::invalid(format!("{what} {n:?}"), "no exchangeable type")
                })
            })
            .collect()
    };
    let in_names: Vec<&str> = f.inputs.iter().map(|i| i.name.as_str()).collect();
    let out_names: Vec<&str> = f
        .block()
        .map(|b| b.outputs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    Ok((
        pick(in_names, &inputs, "input")?,
        pick(out_names, &outputs, "output")?,
    ))
}

impl AneModel {
    /// Exports, compiles (unless cached) and loads `function` of `model`.
    pub fn load(backend: &AneBackend, model: &Model, options: &LoadOptions) -> Result<Self> {
        let function = match &options.function {
            Some(f) => f.clone(),
            None => ModelSummary::of(model)
                .default_function
                .ok_or_else(|| AppleError::invalid("model", "no default function; choose one"))?,
        };
        let program = model
            .require_program()
            .map_err(|e| AppleError::invalid("model", e.to_string()))?;
        let exported = export(program, &function)?;
        let (inputs, outputs) = ordered_specs(model, &function)?;
        let key = exported.key();
        let loaded =
            autoreleasepool(|_| load_program(backend, &exported, &key, &inputs, &outputs))?;
        Ok(Self {
            loaded: Mutex::new(SendLoaded(loaded)),
            function,
            inputs,
            outputs,
            key,
        })
    }

    /// The cache key of the loaded program.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn predict_impl(&self, inputs: &NamedTensors) -> Result<NamedTensors> {
        let guard = self
            .loaded
            .lock()
            .map_err(|_| AppleError::invalid("ANE model", "lock poisoned by an earlier panic"))?;
        let l = &guard.0;
        autoreleasepool(|_| {
            for s in &l.inputs {
                let t = inputs.get(&s.spec.name).ok_or_else(|| {
                    AppleError::invalid(format!("input {:?}", s.spec.name), "missing")
                })?;
                let bytes = tensor_bytes(t, s.spec.dtype);
                if bytes.len() != s.bytes {
                    return Err(AppleError::invalid(
                        format!("input {:?}", s.spec.name),
                        format!("{} bytes given, the program takes {}", bytes.len(), s.bytes),
                    ));
                }
                // SAFETY: locking a surface this model owns; unlocked below.
                let kr = unsafe {
                    s.surface
                        .lock(IOSurfaceLockOptions::empty(), std::ptr::null_mut())
                };
                if kr != 0 {
                    return Err(AppleError::status("IOSurfaceLock", kr, s.spec.name.clone()));
                }
                // SAFETY: the locked surface has `s.bytes` bytes at its base address.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        s.surface.base_address().as_ptr().cast::<u8>(),
                        s.bytes,
                    )
                };
                // SAFETY: unlocking what was locked above.
                unsafe {
                    s.surface
                        .unlock(IOSurfaceLockOptions::empty(), std::ptr::null_mut())
                };
            }
            let options: Retained<NSDictionary<NSString, AnyObject>> = NSDictionary::new();
            // SAFETY: `evaluateWithQoS:options:request:error:` was checked at load (unsigned
            // int, object, object, NSError** → BOOL); the request refers to this model's
            // surfaces, which are not in use elsewhere (lock held).
            let r: std::result::Result<(), Retained<NSError>> = unsafe {
                msg_send![&*l.model, evaluateWithQoS: QOS, options: &*options, request: &*l.request, error: _]
            };
            r.map_err(|e| ane_error(AneStage::Evaluate, Some(&e)))?;
            let mut out = NamedTensors::new();
            for s in &l.outputs {
                let mut bytes = vec![0u8; s.bytes];
                // SAFETY: as for the inputs, read-only.
                let kr = unsafe {
                    s.surface
                        .lock(IOSurfaceLockOptions::ReadOnly, std::ptr::null_mut())
                };
                if kr != 0 {
                    return Err(AppleError::status("IOSurfaceLock", kr, s.spec.name.clone()));
                }
                // SAFETY: the locked surface has `s.bytes` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        s.surface.base_address().as_ptr().cast::<u8>(),
                        bytes.as_mut_ptr(),
                        s.bytes,
                    )
                };
                // SAFETY: unlocking what was locked above.
                unsafe {
                    s.surface
                        .unlock(IOSurfaceLockOptions::ReadOnly, std::ptr::null_mut())
                };
                let bad = |e: ndarray::ShapeError| {
                    AppleError::invalid(format!("output {:?}", s.spec.name), e.to_string())
                };
                let t = match s.spec.dtype {
                    ElementType::F16 => Tensor::F16(
                        ArrayD::from_shape_vec(
                            IxDyn(&s.shape),
                            bytes
                                .chunks_exact(2)
                                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                                .collect(),
                        )
                        .map_err(bad)?,
                    ),
                    _ => Tensor::F32(
                        ArrayD::from_shape_vec(
                            IxDyn(&s.shape),
                            bytes
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect(),
                        )
                        .map_err(bad)?,
                    ),
                };
                out.insert(s.spec.name.clone(), t);
            }
            Ok(out)
        })
    }
}

fn stage_files(dir: &std::path::Path, exported: &Exported) -> Result<()> {
    let weights = dir.join("weights");
    std::fs::create_dir_all(&weights).map_err(|e| AppleError::io(&weights, e))?;
    let mil = dir.join("model.mil");
    std::fs::write(&mil, exported.mil.as_bytes()).map_err(|e| AppleError::io(&mil, e))?;
    if !exported.weights.is_empty() {
        let w = weights.join("weight.bin");
        std::fs::write(&w, &exported.weights).map_err(|e| AppleError::io(&w, e))?;
    }
    Ok(())
}

fn load_program(
    backend: &AneBackend,
    exported: &Exported,
    key: &str,
    inputs: &[FeatureSpec],
    outputs: &[FeatureSpec],
) -> Result<Loaded> {
    let api = api()?;
    let mil = NSData::with_bytes(exported.mil.as_bytes());
    let weights: Retained<NSDictionary<NSString, AnyObject>> = if exported.weights.is_empty() {
        NSDictionary::new()
    } else {
        let entry: Retained<NSDictionary<NSString, AnyObject>> =
            NSDictionary::from_retained_objects(
                &[&*NSString::from_str("offset"), &*NSString::from_str("data")],
                &[
                    crate::cf::any_object(NSNumber::new_u64(0)),
                    crate::cf::any_object(NSData::with_bytes(&exported.weights)),
                ],
            );
        NSDictionary::from_retained_objects(
            &[&*NSString::from_str(WEIGHT_FILE)],
            &[crate::cf::any_object(entry)],
        )
    };
    let nil: Option<&AnyObject> = None;
    // SAFETY: selector and signature checked by `api()`: three objects (MIL text as NSData,
    // weights dictionary, nil options) → descriptor or nil.
    let desc: Option<Retained<AnyObject>> = unsafe {
        msg_send![api.descriptor, modelWithMILText: &*mil, weights: &*weights, optionsPlist: nil]
    };
    let desc = desc.ok_or_else(|| ane_error(AneStage::Describe, None))?;
    // SAFETY: checked by `api()`: descriptor → in-memory model or nil.
    let model: Option<Retained<AnyObject>> =
        unsafe { msg_send![api.model, inMemoryModelWithDescriptor: &*desc] };
    let model = model.ok_or_else(|| ane_error(AneStage::Describe, None))?;
    // SAFETY: checked by `api()`: → NSString.
    let hex: Option<Retained<NSString>> = unsafe { msg_send![&*model, hexStringIdentifier] };
    let hex = hex
        .map(|h| h.to_string())
        .ok_or_else(|| ane_error(AneStage::Describe, None))?;
    let staging = PathBuf::from(NSTemporaryDirectory().to_string()).join(&hex);
    // The framework's own staging "does not save files properly" (maderix/ANE#54): write
    // them ourselves before compiling.
    stage_files(&staging, exported)?;
    let os_build = crate::coreml::os_build();
    let options: Retained<NSDictionary<NSString, AnyObject>> = NSDictionary::new();
    // SAFETY: checked by `api()`: → BOOL.
    let exists: bool = unsafe { msg_send![&*model, compiledModelExists] };
    let cached = exists && backend.index.lookup(key, &os_build).is_some();
    if cached {
        tracing::debug!(key, identifier = %hex, "ANE program from the system cache");
    } else {
        let n = backend.budget.acquire()?;
        tracing::info!(
            key,
            compile = n,
            limit = backend.budget.limit(),
            "compiling for the Neural Engine"
        );
        // SAFETY: checked by `api()`: (unsigned int, NSDictionary, NSError**) → BOOL.
        let r: std::result::Result<(), Retained<NSError>> =
            unsafe { msg_send![&*model, compileWithQoS: QOS, options: &*options, error: _] };
        r.map_err(|e| ane_error(AneStage::Compile, Some(&e)))?;
        backend.index.record(&CacheEntry {
            key: key.to_string(),
            identifier: hex.clone(),
            os_build,
            function: exported.function.clone(),
        })?;
    }
    // SAFETY: checked by `api()`: (unsigned int, NSDictionary, NSError**) → BOOL.
    let r: std::result::Result<(), Retained<NSError>> =
        unsafe { msg_send![&*model, loadWithQoS: QOS, options: &*options, error: _] };
    if let Err(e) = r {
        if cached {
            // The system may have purged the program since it was indexed.
            backend.index.forget(key);
        }
        return Err(ane_error(AneStage::Load, Some(&e)));
    }
    let make = |specs: &[FeatureSpec]| -> Result<Vec<Surface>> {
        specs
            .iter()
            .map(|spec| {
                let (shape, bytes) = io_layout(spec)?;
                Ok(Surface {
                    surface: surface(bytes)?,
                    spec: spec.clone(),
                    shape,
                    bytes,
                })
            })
            .collect()
    };
    let in_surfaces = make(inputs)?;
    let out_surfaces = make(outputs)?;
    let wrap = |s: &Surface| -> Result<Retained<AnyObject>> {
        // SAFETY: checked by `api()`: IOSurfaceRef → `_ANEIOSurfaceObject` (retains it).
        let o: Option<Retained<AnyObject>> =
            unsafe { msg_send![api.surface, objectWithIOSurface: &*s.surface] };
        o.ok_or_else(|| ane_error(AneStage::Prepare, None))
    };
    let in_objs: Vec<Retained<AnyObject>> = in_surfaces.iter().map(wrap).collect::<Result<_>>()?;
    let out_objs: Vec<Retained<AnyObject>> =
        out_surfaces.iter().map(wrap).collect::<Result<_>>()?;
    let indices = |n: usize| -> Retained<NSArray<NSNumber>> {
        let v: Vec<Retained<NSNumber>> = (0..n).map(NSNumber::new_usize).collect();
        NSArray::from_retained_slice(&v)
    };
    let in_array = NSArray::from_retained_slice(&in_objs);
    let out_array = NSArray::from_retained_slice(&out_objs);
    let zero = NSNumber::new_usize(0);
    // SAFETY: checked by `api()`: seven objects (input objects, input indices, output
    // objects, output indices, nil weights buffer, nil perf stats, procedure index 0) →
    // request or nil.
    let request: Option<Retained<AnyObject>> = unsafe {
        msg_send![
            api.request,
            requestWithInputs: &*in_array,
            inputIndices: &*indices(in_objs.len()),
            outputs: &*out_array,
            outputIndices: &*indices(out_objs.len()),
            weightsBuffer: nil,
            perfStats: nil,
            procedureIndex: &*zero
        ]
    };
    let request = request.ok_or_else(|| ane_error(AneStage::Prepare, None))?;
    Ok(Loaded {
        model,
        request,
        inputs: in_surfaces,
        outputs: out_surfaces,
        staging,
    })
}

impl Drop for AneModel {
    fn drop(&mut self) {
        let Ok(guard) = self.loaded.lock() else {
            return;
        };
        let l = &guard.0;
        autoreleasepool(|_| {
            // SAFETY: `unloadWithQoS:error:` was checked at load (unsigned int, NSError**
            // → BOOL); the model is loaded and no request is running (lock held).
            let r: std::result::Result<(), Retained<NSError>> =
                unsafe { msg_send![&*l.model, unloadWithQoS: QOS, error: _] };
            if let Err(e) = r {
                tracing::warn!(error = %ane_error(AneStage::Unload, Some(&e)), "ANE unload failed");
            }
        });
        let _ = std::fs::remove_dir_all(&l.staging);
    }
}

impl ModelInstance for AneModel {
    fn function(&self) -> &str {
        &self.function
    }

    fn inputs(&self) -> &[FeatureSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[FeatureSpec] {
        &self.outputs
    }

    fn states(&self) -> &[FeatureSpec] {
        &[]
    }

    fn predict(&self, inputs: &NamedTensors) -> anekit_runtime::Result<NamedTensors> {
        self.predict_impl(inputs).map_err(RuntimeError::from)
    }

    fn predict_with_state(
        &self,
        _inputs: &NamedTensors,
        _state: &mut State,
    ) -> anekit_runtime::Result<NamedTensors> {
        Err(RuntimeError::Predict(
            "the direct Neural Engine path does not run stateful programs".into(),
        ))
    }
}
