//! The Core ML backend over `objc2-core-ml` (Apple platforms; type-checked, not run).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anekit_mil::model::Model;
use anekit_mil::types::row_major_strides;
use anekit_runtime::engine::{
    Availability, Backend, BackendKind, ComputeUnits, FeatureSpec, LoadOptions, ModelInstance,
    NamedTensors, State,
};
use anekit_runtime::{ElementType, RuntimeError, Tensor};
use block2::RcBlock;
use half::f16;
use ndarray::{ArrayD, IxDyn};
use objc2::rc::{Retained, autoreleasepool};
use objc2::runtime::{AnyObject, ProtocolObject};
use objc2::{AnyThread, available};
use objc2_core_foundation::{CFDictionary, CFRetained, CFString, CFType};
use objc2_core_ml::{
    MLArrayBatchProvider, MLBatchProvider, MLComputeUnits, MLDictionaryFeatureProvider,
    MLFeatureProvider, MLFeatureType, MLFeatureValue, MLModel, MLModelConfiguration, MLMultiArray,
    MLMultiArrayDataType, MLPredictionOptions, MLState,
};
use objc2_core_video::{
    CVPixelBuffer, CVPixelBufferCreate, CVPixelBufferGetBaseAddress, CVPixelBufferGetBytesPerRow,
    CVPixelBufferLockBaseAddress, CVPixelBufferLockFlags, CVPixelBufferUnlockBaseAddress,
    kCVPixelBufferIOSurfacePropertiesKey, kCVPixelFormatType_OneComponent16Half, kCVReturnSuccess,
};
use objc2_foundation::{NSArray, NSDictionary, NSError, NSInteger, NSNumber, NSString, NSURL};

use super::{CompileCache, backing_plans, io_specs, pixel_buffer_layout};
use crate::cf;
use crate::error::{AppleError, Result};
use crate::exception::guard;

/// The Core ML backend.
#[derive(Debug, Clone)]
pub struct CoreMlBackend {
    cache: CompileCache,
}

impl Default for CoreMlBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreMlBackend {
    /// The backend with the compile cache in its default location.
    pub fn new() -> Self {
        Self {
            cache: CompileCache::default_location(),
        }
    }

    /// The backend with its compile cache in `cache`.
    pub fn with_cache(cache: CompileCache) -> Self {
        Self { cache }
    }

    /// The compiled `.mlmodelc` for `model`: the model's own folder when it was read from
    /// one, else a cached compile of its source (compiled now when the cache has none for
    /// this content and OS build). A model held only in memory is written as a package
    /// first.
    pub fn compiled_path(&self, model: &Model) -> Result<PathBuf> {
        use anekit_format::AssetKind;
        match (&model.source, model.format) {
            (Some(p), Some(AssetKind::Compiled)) => Ok(p.clone()),
            (Some(p), Some(_)) => compile_cached(&self.cache, p),
            _ => {
                let dir = tempfile_dir()?;
                let pkg = dir.join("model.mlpackage");
                model.save_mlpackage(&pkg).map_err(|e| {
                    AppleError::invalid("writing the model for Core ML", e.to_string())
                })?;
                let r = compile_cached(&self.cache, &pkg);
                let _ = std::fs::remove_dir_all(&dir);
                r
            }
        }
    }
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "anekit-coreml-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&d).map_err(|e| AppleError::io(&d, e))?;
    Ok(d)
}

/// The OS build (`kern.osversion`), part of the compile-cache key.
pub fn os_build() -> String {
    crate::sysctl::string("kern.osversion").unwrap_or_else(|| "unknown".into())
}

fn file_url(path: &Path) -> Result<Retained<NSURL>> {
    let path = &std::fs::canonicalize(path).map_err(|e| AppleError::io(path, e))?;
    let url = if path.is_dir() {
        NSURL::from_directory_path(path)
    } else {
        NSURL::from_file_path(path)
    };
    url.ok_or_else(|| AppleError::invalid(path.display().to_string(), "not an absolute path"))
}

/// Compiles `source` (`.mlpackage` or `.mlmodel`) with Core ML, through `cache`.
pub fn compile_cached(cache: &CompileCache, source: &Path) -> Result<PathBuf> {
    let source = std::fs::canonicalize(source).map_err(|e| AppleError::io(source, e))?;
    let key = CompileCache::key(&source, &os_build())?;
    if let Some(p) = cache.lookup(&key) {
        tracing::debug!(path = %p.display(), "compiled model from cache");
        return Ok(p);
    }
    let t0 = std::time::Instant::now();
    let compiled = compile(&source)?;
    tracing::info!(
        source = %source.display(),
        ms = t0.elapsed().as_millis() as u64,
        "compiled with Core ML"
    );
    let dest = cache.insert(&key, &compiled)?;
    // Core ML compiles into a fresh temporary folder; remove what is left of it.
    if let Some(parent) = compiled.parent()
        && parent != std::env::temp_dir()
    {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(dest)
}

/// Compiles `source` with `+[MLModel compileModelAtURL:completionHandler:]` (the
/// synchronous call before macOS 13 / iOS 16) and returns the temporary `.mlmodelc`.
pub fn compile(source: &Path) -> Result<PathBuf> {
    let url = file_url(source)?;
    if available!(macos = 13.0, ios = 16.0) {
        let (tx, rx) = mpsc::channel::<Result<PathBuf>>();
        let block = RcBlock::new(move |out: *mut NSURL, err: *mut NSError| {
            // SAFETY: Core ML passes a valid URL or error (or null) for the duration of
            // the handler; retaining them keeps them alive while we read them.
            let r = unsafe {
                match (Retained::retain(out), Retained::retain(err)) {
                    (Some(u), _) => u
                        .to_file_path()
                        .ok_or_else(|| AppleError::invalid("compiled model URL", "not a file URL")),
                    (None, Some(e)) => {
                        Err(cf::ns_error("compileModelAtURL:completionHandler:", &e))
                    }
                    (None, None) => Err(AppleError::null(
                        "compileModelAtURL:completionHandler:",
                        "neither a model nor an error",
                    )),
                }
            };
            let _ = tx.send(r);
        });
        guard("+[MLModel compileModelAtURL:completionHandler:]", || {
            // SAFETY: available since macOS 13 / iOS 16 (checked); the handler is copied by
            // Core ML and called once.
            unsafe { MLModel::compileModelAtURL_completionHandler(&url, &block) }
        })?;
        rx.recv().map_err(|_| {
            AppleError::null(
                "compileModelAtURL:completionHandler:",
                "the handler was never called",
            )
        })?
    } else {
        // SAFETY: the synchronous compile of older systems; returns the compiled URL or an
        // error.
        #[allow(deprecated)]
        let r = guard("+[MLModel compileModelAtURL:error:]", || unsafe {
            MLModel::compileModelAtURL_error(&url)
        })?;
        match r {
            Ok(u) => u
                .to_file_path()
                .ok_or_else(|| AppleError::invalid("compiled model URL", "not a file URL")),
            Err(e) => Err(cf::ns_error("compileModelAtURL:error:", &e)),
        }
    }
}

fn configuration(options: &LoadOptions) -> Result<Retained<MLModelConfiguration>> {
    if options.compute_units == ComputeUnits::CpuAndNe && !available!(macos = 13.0, ios = 16.0) {
        return Err(AppleError::Unavailable {
            feature: "cpuAndNeuralEngine",
            reason: "needs macOS 13 / iOS 16 or later".into(),
        });
    }
    // SAFETY: creating and setting a fresh configuration object.
    let config = unsafe { MLModelConfiguration::new() };
    // SAFETY: a valid MLComputeUnits value (0…3).
    unsafe { config.setComputeUnits(MLComputeUnits(options.compute_units.coreml_value())) };
    if let Some(f) = &options.function {
        if !available!(macos = 15.0, ios = 18.0) {
            return Err(AppleError::Unavailable {
                feature: "function selection",
                reason: "MLModelConfiguration.functionName needs macOS 15 / iOS 18 or later".into(),
            });
        }
        // SAFETY: available (checked); the name is copied.
        unsafe { config.setFunctionName(Some(&NSString::from_str(f))) };
    }
    Ok(config)
}

impl Backend for CoreMlBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::CoreMl
    }

    fn availability(&self) -> Availability {
        // Core ML itself is present on every Apple OS; ML Programs need macOS 12 / iOS 15.
        match crate::platform::os_reason() {
            None => Availability::Available,
            Some(why) => Availability::Unavailable(why),
        }
    }

    fn load(
        &self,
        model: Arc<Model>,
        options: &LoadOptions,
    ) -> anekit_runtime::Result<Box<dyn ModelInstance>> {
        Ok(Box::new(CoreMlModel::load(self, &model, options)?))
    }
}

/// An `MLModel` that may be moved between threads, with the buffers it reuses: output
/// backings by output name and fp16 input pixel buffers by (width, height), created once
/// and reused by every synchronous prediction (Core ML is done with them when the call
/// returns).
struct SharedModel {
    model: Retained<MLModel>,
    backings: HashMap<String, Backing>,
    input_buffers: HashMap<(usize, usize), Vec<CFRetained<CVPixelBuffer>>>,
}

// SAFETY: MLModel is a reference-counted Objective-C object not bound to a thread (Core ML
// documents loading on a background queue and predicting from any thread); every
// prediction through this wrapper is serialized by the `Mutex` around it.
unsafe impl Send for SharedModel {}
// SAFETY: as above; shared access only reads the retained pointer.
unsafe impl Sync for SharedModel {}

/// A model loaded by Core ML.
pub struct CoreMlModel {
    model: Mutex<SharedModel>,
    function: String,
    inputs: Vec<FeatureSpec>,
    outputs: Vec<FeatureSpec>,
    states: Vec<FeatureSpec>,
    compiled: PathBuf,
}

impl std::fmt::Debug for CoreMlModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreMlModel")
            .field("function", &self.function)
            .field("compiled", &self.compiled)
            .finish_non_exhaustive()
    }
}

/// A failure while predicting (loading maps through `From<AppleError>`, as a load error).
fn rt_predict(e: AppleError) -> RuntimeError {
    RuntimeError::Predict(e.to_string())
}

impl CoreMlModel {
    /// Compiles (cached) and loads `model` with `options`.
    pub fn load(backend: &CoreMlBackend, model: &Model, options: &LoadOptions) -> Result<Self> {
        let super::IoSpecs {
            function,
            inputs,
            outputs,
            states,
        } = io_specs(model, options.function.as_deref())?;
        let compiled = backend.compiled_path(model)?;
        let url = file_url(&compiled)?;
        let config = configuration(options)?;
        let t0 = std::time::Instant::now();
        let loaded = guard(
            "+[MLModel modelWithContentsOfURL:configuration:error:]",
            || {
                autoreleasepool(|_| {
                    // SAFETY: a compiled model URL and a configuration; returns the model or an
                    // error.
                    unsafe { MLModel::modelWithContentsOfURL_configuration_error(&url, &config) }
                        .map_err(|e| {
                            cf::ns_error("modelWithContentsOfURL:configuration:error:", &e)
                        })
                })
            },
        )??;
        tracing::info!(
            compiled = %compiled.display(),
            units = options.compute_units.coreml_name(),
            ms = t0.elapsed().as_millis() as u64,
            "loaded with Core ML"
        );
        Ok(Self {
            model: Mutex::new(SharedModel {
                model: loaded,
                backings: HashMap::new(),
                input_buffers: HashMap::new(),
            }),
            function,
            inputs,
            outputs,
            states,
            compiled,
        })
    }

    /// The compiled model folder.
    pub fn compiled(&self) -> &Path {
        &self.compiled
    }

    fn with_model<T>(&self, f: impl FnOnce(&mut SharedModel) -> Result<T>) -> Result<T> {
        let mut guard = self.model.lock().map_err(|_| {
            AppleError::invalid("Core ML model", "lock poisoned by an earlier panic")
        })?;
        autoreleasepool(|_| f(&mut guard))
    }

    /// Runs a batch of predictions with `predictionsFromBatch:options:error:` (one call
    /// for the whole batch).
    pub fn predict_batch(&self, batch: &[NamedTensors]) -> Result<Vec<NamedTensors>> {
        self.with_model(|m| {
            let mut providers = Vec::with_capacity(batch.len());
            let mut keep = Vec::new();
            for inputs in batch {
                let (p, k) = feature_provider(inputs, &self.inputs, None)?;
                providers.push(ProtocolObject::from_retained(p));
                keep.push(k);
            }
            let array = NSArray::from_retained_slice(&providers);
            let out = guard("-[MLModel predictionsFromBatch:options:error:]", || {
                // SAFETY: an array of feature providers.
                let batch_provider = unsafe {
                    MLArrayBatchProvider::initWithFeatureProviderArray(
                        MLArrayBatchProvider::alloc(),
                        &array,
                    )
                };
                // SAFETY: creating default prediction options.
                let options = unsafe { MLPredictionOptions::new() };
                // SAFETY: the providers' arrays point into `batch` (alive for this call) or
                // into `keep`; the call is synchronous.
                unsafe {
                    m.model.predictionsFromBatch_options_error(
                        ProtocolObject::from_ref(&*batch_provider),
                        &options,
                    )
                }
                .map_err(|e| cf::ns_error("predictionsFromBatch:options:error:", &e))
            })??;
            drop(keep);
            // SAFETY: reading the count and items of the result batch.
            let n = unsafe { out.count() };
            (0..n)
                .map(|i| {
                    // SAFETY: `i` < count.
                    let features = unsafe { out.featuresAtIndex(i) };
                    read_outputs(&features, &self.outputs, &HashMap::new())
                })
                .collect()
        })
    }

    /// Starts a prediction with `predictionFromFeatures:completionHandler:` (macOS 14 /
    /// iOS 17) and returns at once; [`AsyncPrediction::wait`] gives the outputs.
    pub fn predict_async(&self, inputs: NamedTensors) -> Result<AsyncPrediction> {
        if !available!(macos = 14.0, ios = 17.0) {
            return Err(AppleError::Unavailable {
                feature: "async prediction",
                reason: "needs macOS 14 / iOS 17 or later".into(),
            });
        }
        let (tx, rx) = mpsc::channel();
        let inputs = Arc::new(inputs);
        self.with_model(|m| {
            // No pooled buffers: they must outlive this call, until the handler has run.
            let (provider, keep) = feature_provider(&inputs, &self.inputs, None)?;
            let outputs = self.outputs.clone();
            // The input arrays point into `inputs`: the block keeps them (and the pixel
            // buffers) alive until Core ML has called it and released it.
            let held = (Arc::clone(&inputs), SendKeep { _held: keep });
            let _ = &held;
            let block = RcBlock::new(
                move |result: *mut ProtocolObject<dyn MLFeatureProvider>, err: *mut NSError| {
                    let _ = &held;
                    // SAFETY: Core ML passes a valid provider or error (or null) for the duration
                    // of the handler.
                    let r = unsafe {
                        match (Retained::retain(result), Retained::retain(err)) {
                            (Some(p), _) => {
                                autoreleasepool(|_| read_outputs(&p, &outputs, &HashMap::new()))
                            }
                            (None, Some(e)) => Err(cf::ns_error(
                                "predictionFromFeatures:completionHandler:",
                                &e,
                            )),
                            (None, None) => Err(AppleError::null(
                                "predictionFromFeatures:completionHandler:",
                                "no result",
                            )),
                        }
                    };
                    let _ = tx.send(r);
                },
            );
            guard(
                "-[MLModel predictionFromFeatures:completionHandler:]",
                || {
                    // SAFETY: available (checked); the provider's arrays stay alive through
                    // `held`.
                    unsafe {
                        m.model.predictionFromFeatures_completionHandler(
                            ProtocolObject::from_ref(&*provider),
                            &block,
                        )
                    }
                },
            )?;
            Ok(())
        })?;
        Ok(AsyncPrediction { rx })
    }

    /// The output backings of this model, created on first use and kept (a backing that
    /// cannot be created is left out: a backing is only a proposal).
    fn ensure_backings(&self, m: &mut SharedModel) {
        for plan in backing_plans(&self.outputs) {
            if m.backings.contains_key(&plan.name) {
                continue;
            }
            match Backing::new(&plan) {
                Ok(b) => {
                    m.backings.insert(plan.name.clone(), b);
                }
                Err(e) => {
                    tracing::debug!(output = %plan.name, error = %e, "no output backing: Core ML allocates this output");
                }
            }
        }
    }

    fn predict_impl(
        &self,
        inputs: &NamedTensors,
        state: Option<&mut State>,
    ) -> Result<NamedTensors> {
        self.with_model(|m| {
            let (provider, keep) =
                feature_provider(inputs, &self.inputs, Some(&mut m.input_buffers))?;
            self.ensure_backings(m);
            let provider = ProtocolObject::from_ref(&*provider);
            // SAFETY: creating prediction options.
            let options = unsafe { MLPredictionOptions::new() };
            if !m.backings.is_empty() {
                let names: Vec<Retained<NSString>> =
                    m.backings.keys().map(|n| NSString::from_str(n)).collect();
                let name_refs: Vec<&NSString> = names.iter().map(|n| &**n).collect();
                let arrays: Vec<Retained<AnyObject>> = m
                    .backings
                    .values()
                    .map(|b| crate::cf::any_object(b.array.clone()))
                    .collect();
                let dict = NSDictionary::from_retained_objects(&name_refs, &arrays);
                // A refused proposal is not an error: Core ML then allocates the output.
                let set = guard("-[MLPredictionOptions setOutputBackings:]", || {
                    // SAFETY: a dictionary of output name → MLMultiArray backed by an
                    // IOSurface pixel buffer.
                    unsafe { options.setOutputBackings(&dict) }
                });
                if let Err(e) = set {
                    tracing::debug!(error = %e, "output backings not accepted");
                }
            }
            let result = match state {
                None => guard("-[MLModel predictionFromFeatures:options:error:]", || {
                    // SAFETY: the inputs' arrays point into `inputs` or `keep`, both alive
                    // for this synchronous call.
                    unsafe {
                        m.model
                            .predictionFromFeatures_options_error(provider, &options)
                    }
                    .map_err(|e| cf::ns_error("predictionFromFeatures:options:error:", &e))
                })??,
                Some(state) => {
                    if !available!(macos = 15.0, ios = 18.0) {
                        return Err(AppleError::Unavailable {
                            feature: "MLState",
                            reason: "stateful models need macOS 15 / iOS 18 or later".into(),
                        });
                    }
                    let ml_state = self.ml_state(m, state)?;
                    let r = guard(
                        "-[MLModel predictionFromFeatures:usingState:options:error:]",
                        || {
                            // SAFETY: available (checked); the state belongs to this model.
                            unsafe {
                                m.model.predictionFromFeatures_usingState_options_error(
                                    provider, &ml_state, &options,
                                )
                            }
                            .map_err(|e| {
                                cf::ns_error("predictionFromFeatures:usingState:options:error:", &e)
                            })
                        },
                    )??;
                    // The state now lives in the MLState; it is read out only when asked for.
                    state.backend_updated();
                    r
                }
            };
            let out = read_outputs(&result, &self.outputs, &m.backings);
            let (pixel_buffers, owned) = keep;
            pixel_buffers.return_to(&mut m.input_buffers);
            drop(owned);
            out
        })
    }

    /// The `MLState` kept for `state`: created from its tensors the first time this model
    /// sees it (one copy in), then reused; tensors the caller wrote since are handed over.
    fn ml_state(&self, m: &SharedModel, state: &mut State) -> Result<Retained<MLState>> {
        let owner = self as *const Self as usize;
        let pending = state.take_pending();
        if let Some(b) = state.backend_mut(owner)
            && let Some(cs) = b.as_any_mut().downcast_mut::<CoreMlState>()
        {
            for (name, t) in &pending {
                write_state(&cs.state, name, t)?;
            }
            return Ok(cs.state.clone());
        }
        // SAFETY: available (checked by the caller); a zero-initialised state of this model.
        let ml_state = guard("-[MLModel newState]", || unsafe { m.model.newState() })?;
        for spec in &self.states {
            write_state(
                &ml_state,
                &spec.name,
                state.read(&spec.name).map_err(runtime_to_apple)?,
            )?;
        }
        state
            .attach(Box::new(CoreMlState {
                owner,
                state: ml_state.clone(),
                specs: self.states.clone(),
            }))
            .map_err(runtime_to_apple)?;
        Ok(ml_state)
    }
}

/// A caller's state kept as Core ML's `MLState` (anekit-runtime's `BackendState`).
struct CoreMlState {
    owner: usize,
    state: Retained<MLState>,
    specs: Vec<FeatureSpec>,
}

// SAFETY: MLState is a reference-counted object; it is only used through `&mut State` (one
// caller at a time) and inside the model's lock during predictions.
unsafe impl Send for CoreMlState {}
// SAFETY: as above; shared references only read it through Core ML's synchronous accessor.
unsafe impl Sync for CoreMlState {}

impl anekit_runtime::engine::BackendState for CoreMlState {
    fn owner(&self) -> usize {
        self.owner
    }

    fn read(&self, name: &str) -> anekit_runtime::Result<Tensor> {
        let spec =
            self.specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| RuntimeError::State {
                    name: name.into(),
                    message: "no such state".into(),
                })?;
        autoreleasepool(|_| read_state(&self.state, spec)).map_err(RuntimeError::from)
    }

    fn write(&mut self, name: &str, value: &Tensor) -> anekit_runtime::Result<()> {
        autoreleasepool(|_| write_state(&self.state, name, value)).map_err(RuntimeError::from)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

fn runtime_to_apple(e: RuntimeError) -> AppleError {
    AppleError::invalid("state", e.to_string())
}

/// Objects that must outlive a prediction: the pixel buffers behind input arrays, by their
/// (width, height).
struct Keep(Vec<((usize, usize), CFRetained<CVPixelBuffer>)>);

/// Pooled fp16 input pixel buffers by (width, height).
type BufferPool = HashMap<(usize, usize), Vec<CFRetained<CVPixelBuffer>>>;

impl Keep {
    /// Gives the buffers back to `pool` for the next prediction (a few per size).
    fn return_to(self, pool: &mut BufferPool) {
        for (size, pb) in self.0 {
            let v = pool.entry(size).or_default();
            if v.len() < 4 {
                v.push(pb);
            }
        }
    }
}

/// What must outlive an asynchronous prediction, moved into its completion handler.
struct SendKeep {
    _held: (Keep, Vec<Vec<u8>>),
}

// SAFETY: the pixel buffers are reference-counted CF objects; the handler only holds them
// (no access) until Core ML releases the block.
unsafe impl Send for SendKeep {}

/// A prediction started by [`CoreMlModel::predict_async`].
#[derive(Debug)]
pub struct AsyncPrediction {
    rx: mpsc::Receiver<Result<NamedTensors>>,
}

impl AsyncPrediction {
    /// Waits for the outputs.
    pub fn wait(self) -> Result<NamedTensors> {
        self.rx.recv().map_err(|_| {
            AppleError::null(
                "predictionFromFeatures:completionHandler:",
                "the handler was never called",
            )
        })?
    }
}

impl ModelInstance for CoreMlModel {
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
        &self.states
    }

    fn predict(&self, inputs: &NamedTensors) -> anekit_runtime::Result<NamedTensors> {
        self.predict_impl(inputs, None).map_err(rt_predict)
    }

    fn predict_with_state(
        &self,
        inputs: &NamedTensors,
        state: &mut State,
    ) -> anekit_runtime::Result<NamedTensors> {
        self.predict_impl(inputs, Some(state)).map_err(rt_predict)
    }
}

fn ml_type(t: ElementType) -> Option<MLMultiArrayDataType> {
    Some(match t {
        ElementType::F32 => MLMultiArrayDataType::Float32,
        ElementType::F16 => MLMultiArrayDataType::Float16,
        ElementType::I32 => MLMultiArrayDataType::Int32,
        ElementType::I8 if available!(macos = 26.0, ios = 26.0) => MLMultiArrayDataType::Int8,
        _ => return None,
    })
}

/// An IOSurface-backed fp16 pixel buffer of `width` × `height`.
fn fp16_pixel_buffer(width: usize, height: usize) -> Result<CFRetained<CVPixelBuffer>> {
    let empty = CFDictionary::<CFString, CFType>::empty();
    let empty: &CFType = (*empty).as_ref();
    // SAFETY: the key is a constant of Core Video.
    let key: &CFString = unsafe { kCVPixelBufferIOSurfacePropertiesKey };
    let attrs = CFDictionary::<CFString, CFType>::from_slices(&[key], &[empty]);
    let mut out: *mut CVPixelBuffer = std::ptr::null_mut();
    // SAFETY: `attrs` is a valid attributes dictionary; `out` a valid out-pointer; on
    // success the buffer is returned owned (create rule).
    let rc = unsafe {
        CVPixelBufferCreate(
            None,
            width,
            height,
            kCVPixelFormatType_OneComponent16Half,
            Some(attrs.as_opaque()),
            NonNull::from(&mut out),
        )
    };
    if rc != kCVReturnSuccess {
        return Err(AppleError::status(
            "CVPixelBufferCreate",
            rc,
            format!("{width}×{height} fp16"),
        ));
    }
    let out =
        NonNull::new(out).ok_or_else(|| AppleError::null("CVPixelBufferCreate", "no buffer"))?;
    // SAFETY: owned by the create call above.
    Ok(unsafe { CFRetained::from_raw(out) })
}

/// Runs `f` on the base address and row stride of a locked pixel buffer.
fn with_locked<T>(
    pb: &CVPixelBuffer,
    read_only: bool,
    f: impl FnOnce(*mut u8, usize) -> T,
) -> Result<T> {
    let flags = if read_only {
        CVPixelBufferLockFlags::ReadOnly
    } else {
        CVPixelBufferLockFlags::empty()
    };
    // SAFETY: locking a live pixel buffer; unlocked below with the same flags.
    let rc = unsafe { CVPixelBufferLockBaseAddress(pb, flags) };
    if rc != kCVReturnSuccess {
        return Err(AppleError::status("CVPixelBufferLockBaseAddress", rc, ""));
    }
    let base = CVPixelBufferGetBaseAddress(pb).cast::<u8>();
    let stride = CVPixelBufferGetBytesPerRow(pb);
    let r = f(base, stride);
    // SAFETY: unlocking what was locked above.
    unsafe { CVPixelBufferUnlockBaseAddress(pb, flags) };
    Ok(r)
}

fn contiguous_bytes(t: &Tensor) -> Vec<u8> {
    match t {
        Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::F16(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::I32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::I8(a) => a.iter().map(|v| *v as u8).collect(),
        Tensor::U8(a) => a.iter().copied().collect(),
        Tensor::Bool(a) => a.iter().map(|v| u8::from(*v)).collect(),
        // Not multi-array data (inputs of these types are refused before this).
        Tensor::Str(_) | Tensor::Dict(_) => Vec::new(),
    }
}

/// An `MLMultiArray` for one input: fp16 tensors go into an IOSurface-backed pixel buffer
/// (the layout the Neural Engine reads without a further copy); f32/i32/i8 tensors in
/// standard layout are wrapped in place (`initWithDataPointer:…`, no copy); others are
/// copied once. `u8` and `bool`
/// inputs, which Core ML does not exchange, are widened to `int32`.
fn input_array(
    t: &Tensor,
    keep: &mut Keep,
    owned: &mut Vec<Vec<u8>>,
    pool: &mut Option<&mut BufferPool>,
) -> Result<Retained<MLMultiArray>> {
    let shape = t.shape().to_vec();
    let ns_shape = cf::ns_usizes(&shape);
    if let Tensor::F16(a) = t
        && let Some((w, h)) = pixel_buffer_layout(&shape)
    {
        let pooled = pool
            .as_deref_mut()
            .and_then(|p| p.get_mut(&(w, h)))
            .and_then(Vec::pop);
        let pb = match pooled {
            Some(pb) => pb,
            None => fp16_pixel_buffer(w, h)?,
        };
        let values: Vec<f16> = a.iter().copied().collect();
        with_locked(&pb, false, |base, stride| {
            for (r, row) in values.chunks(w).enumerate() {
                // SAFETY: the buffer has `h` rows of `stride` ≥ `w × 2` bytes; `r` < `h`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        row.as_ptr().cast::<u8>(),
                        base.add(r * stride),
                        w * 2,
                    )
                };
            }
        })?;
        // SAFETY: an fp16 OneComponent16Half pixel buffer whose width is the last dimension
        // and height the product of the others (checked by `pixel_buffer_layout`).
        let arr = unsafe {
            MLMultiArray::initWithPixelBuffer_shape(MLMultiArray::alloc(), &pb, &ns_shape)
        };
        keep.0.push(((w, h), pb));
        return Ok(arr);
    }
    let strides = cf::ns_usizes(&row_major_strides(&shape));
    if let Some((ptr, dtype)) = borrowed_pointer(t) {
        // SAFETY: `ptr` points at the tensor's own row-major elements of `dtype` (standard
        // layout, checked by `borrowed_pointer`); the tensor outlives the prediction (the
        // caller holds it across the synchronous call, or the async handler holds an `Arc`
        // of it); Core ML only reads input arrays, and no deallocator is given.
        return unsafe {
            MLMultiArray::initWithDataPointer_shape_dataType_strides_deallocator_error(
                MLMultiArray::alloc(),
                ptr,
                &ns_shape,
                dtype,
                &strides,
                None,
            )
        }
        .map_err(|e| {
            cf::ns_error(
                "initWithDataPointer:shape:dataType:strides:deallocator:error:",
                &e,
            )
        });
    }
    let (dtype, bytes): (MLMultiArrayDataType, Vec<u8>) = match ml_type(t.dtype()) {
        Some(d) => (d, contiguous_bytes(t)),
        None => (
            MLMultiArrayDataType::Int32,
            contiguous_bytes(&t.cast(ElementType::I32)),
        ),
    };
    owned.push(bytes);
    let data = owned
        .last_mut()
        .ok_or_else(|| AppleError::null("input", "buffer"))?;
    let ptr = NonNull::new(data.as_mut_ptr().cast::<c_void>())
        .ok_or_else(|| AppleError::null("input", "empty buffer"))?;
    // SAFETY: `data` holds shape.product() elements of `dtype`, row-major with `strides`;
    // it lives in `owned` until the prediction has finished (no deallocator: Core ML does
    // not free it).
    unsafe {
        MLMultiArray::initWithDataPointer_shape_dataType_strides_deallocator_error(
            MLMultiArray::alloc(),
            ptr,
            &ns_shape,
            dtype,
            &strides,
            None,
        )
    }
    .map_err(|e| {
        cf::ns_error(
            "initWithDataPointer:shape:dataType:strides:deallocator:error:",
            &e,
        )
    })
}

/// The tensor's own memory, when Core ML can read it in place (f32, i32 and — on macOS 26 /
/// iOS 26 — i8 tensors in standard row-major layout, not empty).
fn borrowed_pointer(t: &Tensor) -> Option<(NonNull<c_void>, MLMultiArrayDataType)> {
    let dtype = ml_type(t.dtype())?;
    let ptr: *const c_void = match t {
        Tensor::F32(a) if a.is_standard_layout() => a.as_ptr().cast(),
        Tensor::I32(a) if a.is_standard_layout() => a.as_ptr().cast(),
        Tensor::I8(a) if a.is_standard_layout() => a.as_ptr().cast(),
        _ => return None,
    };
    if t.is_empty() {
        return None;
    }
    NonNull::new(ptr.cast_mut()).map(|p| (p, dtype))
}

/// The feature provider for `inputs` and what must outlive it.
fn feature_provider(
    inputs: &NamedTensors,
    specs: &[FeatureSpec],
    mut pool: Option<&mut BufferPool>,
) -> Result<(Retained<MLDictionaryFeatureProvider>, (Keep, Vec<Vec<u8>>))> {
    let mut keep = Keep(Vec::new());
    let mut owned = Vec::new();
    let mut names = Vec::new();
    let mut values: Vec<Retained<AnyObject>> = Vec::new();
    for spec in specs {
        let Some(t) = inputs.get(&spec.name) else {
            continue;
        };
        let fv = match t {
            // A string feature: one string.
            Tensor::Str(a) if a.len() == 1 => {
                let s = NSString::from_str(a.iter().next().map_or("", String::as_str));
                // SAFETY: wrapping a string in a feature value.
                unsafe { MLFeatureValue::featureValueWithString(&s) }
            }
            Tensor::Str(_) | Tensor::Dict(_) => {
                return Err(AppleError::invalid(
                    format!("input {:?}", spec.name),
                    format!(
                        "{} {:?} inputs are not supported (a string input is one string)",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
            _ => {
                let arr = input_array(t, &mut keep, &mut owned, &mut pool)?;
                // SAFETY: wrapping an array in a feature value.
                unsafe { MLFeatureValue::featureValueWithMultiArray(&arr) }
            }
        };
        names.push(NSString::from_str(&spec.name));
        values.push(crate::cf::any_object(fv));
    }
    let name_refs: Vec<&NSString> = names.iter().map(|n| &**n).collect();
    let dict: Retained<NSDictionary<NSString, AnyObject>> =
        NSDictionary::from_retained_objects(&name_refs, &values);
    // SAFETY: a dictionary of name → MLFeatureValue.
    let provider = unsafe {
        MLDictionaryFeatureProvider::initWithDictionary_error(
            MLDictionaryFeatureProvider::alloc(),
            &dict,
        )
    }
    .map_err(|e| cf::ns_error("initWithDictionary:error:", &e))?;
    Ok((provider, (keep, owned)))
}

/// A pre-allocated output (zero copy out), kept by the model and reused.
struct Backing {
    shape: Vec<usize>,
    buffer: CFRetained<CVPixelBuffer>,
    array: Retained<MLMultiArray>,
}

impl Backing {
    fn new(plan: &super::BackingPlan) -> Result<Self> {
        let (w, h) = plan.layout;
        let buffer = fp16_pixel_buffer(w, h)?;
        let array = guard("-[MLMultiArray initWithPixelBuffer:shape:]", || {
            // SAFETY: an fp16 OneComponent16Half pixel buffer whose width is the last
            // dimension and height the product of the others (`pixel_buffer_layout`).
            unsafe {
                MLMultiArray::initWithPixelBuffer_shape(
                    MLMultiArray::alloc(),
                    &buffer,
                    &cf::ns_usizes(&plan.shape),
                )
            }
        })?;
        Ok(Self {
            shape: plan.shape.clone(),
            buffer,
            array,
        })
    }
}

fn read_pixel_buffer(pb: &CVPixelBuffer, shape: &[usize]) -> Result<Tensor> {
    let (w, h) =
        pixel_buffer_layout(shape).ok_or_else(|| AppleError::invalid("output", "empty shape"))?;
    let mut values = vec![f16::ZERO; w * h];
    with_locked(pb, true, |base, stride| {
        for r in 0..h {
            // SAFETY: `h` rows of `stride` ≥ `w × 2` bytes; the destination row has `w` values.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    base.add(r * stride),
                    values[r * w..].as_mut_ptr().cast::<u8>(),
                    w * 2,
                )
            };
        }
    })?;
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .map(Tensor::F16)
        .map_err(|e| AppleError::invalid("output", e.to_string()))
}

/// The bytes of an array: `getBytesWithHandler:` (macOS 12.3 / iOS 15.4), else the
/// deprecated `dataPointer` over the extent the shape and strides reach.
fn multi_array_bytes(
    arr: &MLMultiArray,
    elem: usize,
    shape: &[usize],
    strides: &[usize],
) -> Result<Vec<u8>> {
    if available!(macos = 12.3, ios = 15.4) {
        let out = RefCell::new(Vec::new());
        let block = RcBlock::new(|ptr: NonNull<c_void>, len: NSInteger| {
            let n = usize::try_from(len).unwrap_or(0);
            // SAFETY: Core ML passes the array's storage and its size in bytes for the
            // duration of the handler.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), n) };
            out.borrow_mut().extend_from_slice(bytes);
        });
        guard("-[MLMultiArray getBytesWithHandler:]", || {
            // SAFETY: available (checked); the handler is called synchronously before the
            // method returns.
            unsafe { arr.getBytesWithHandler(&block) }
        })?;
        drop(block);
        return Ok(out.into_inner());
    }
    // The furthest element the strides reach, plus one.
    let extent = shape
        .iter()
        .zip(strides)
        .map(|(&d, &s)| d.saturating_sub(1).saturating_mul(s))
        .fold(0usize, usize::saturating_add)
        .saturating_add(1)
        .saturating_mul(elem);
    if shape.contains(&0) {
        return Ok(Vec::new());
    }
    // SAFETY: before macOS 12.3 `dataPointer` is the documented accessor; the array holds
    // every element its shape and strides address (Core ML's MLMultiArray layout), which is
    // the extent copied here.
    #[allow(deprecated)]
    let ptr = guard("-[MLMultiArray dataPointer]", || unsafe {
        arr.dataPointer()
    })?;
    // SAFETY: as above: `extent` bytes are readable at `ptr` while `arr` lives.
    Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), extent) }.to_vec())
}

/// A tensor from an `MLMultiArray` (any strides).
fn array_to_tensor(arr: &MLMultiArray, what: &str) -> Result<Tensor> {
    // SAFETY: reading the properties of a live array.
    let (shape, strides, dtype) = unsafe { (arr.shape(), arr.strides(), arr.dataType()) };
    let shape = cf::usizes(&shape, what)?;
    let strides = cf::usizes(&strides, what)?;
    let (elem, _) = super::multi_array_element(dtype.0).ok_or_else(|| {
        AppleError::invalid(what.to_string(), format!("data type {:#x}", dtype.0))
    })?;
    let raw = multi_array_bytes(arr, elem, &shape, &strides)?;
    super::tensor_from_multi_array(&raw, dtype.0, &shape, &strides, what)
}

/// The outputs of a prediction: from our backing when Core ML used it, else from the array
/// it returned; cast to the declared element type.
fn read_outputs(
    result: &ProtocolObject<dyn MLFeatureProvider>,
    specs: &[FeatureSpec],
    backings: &HashMap<String, Backing>,
) -> Result<NamedTensors> {
    let mut out = NamedTensors::new();
    for spec in specs {
        let what = format!("output {:?}", spec.name);
        // SAFETY: reading a feature of the prediction's result.
        let fv = unsafe { result.featureValueForName(&NSString::from_str(&spec.name)) }
            .ok_or_else(|| AppleError::null("featureValueForName:", what.clone()))?;
        // SAFETY: reading the type of a feature value.
        let kind = unsafe { fv.r#type() };
        if let Some(t) = scalar_feature(&fv, kind, &what)? {
            let t = if t.dtype() == spec.dtype || !spec.dtype.is_numeric() {
                t
            } else {
                t.cast(spec.dtype)
            };
            out.insert(spec.name.clone(), t);
            continue;
        }
        // SAFETY: reading the multi-array of a feature value.
        let arr = unsafe { fv.multiArrayValue() }
            .ok_or_else(|| AppleError::invalid(what.clone(), "not a multi-array"))?;
        let backed = backings.get(&spec.name).filter(|b| {
            // Core ML may ignore a backing; it used it when the result wraps our buffer.
            // SAFETY: reading the pixel buffer of the result array.
            unsafe { arr.pixelBuffer() }.is_some_and(|pb| {
                std::ptr::eq(
                    Retained::as_ptr(&pb),
                    CFRetained::as_ptr(&b.buffer).as_ptr(),
                )
            })
        });
        let t = match backed {
            Some(b) => read_pixel_buffer(&b.buffer, &b.shape)?,
            None => array_to_tensor(&arr, &what)?,
        };
        let t = if t.dtype() == spec.dtype {
            t
        } else {
            t.cast(spec.dtype)
        };
        out.insert(spec.name.clone(), t);
    }
    Ok(out)
}

/// A classifier's outputs: a string (`Tensor::Str` scalar), an int64 (`Tensor::I32`
/// scalar) or a dictionary (`Tensor::Dict`; Core ML's dictionary has no order, so its keys
/// come sorted). `None` for multi-arrays; an error for other feature types.
fn scalar_feature(fv: &MLFeatureValue, kind: MLFeatureType, what: &str) -> Result<Option<Tensor>> {
    let bad = |m: String| AppleError::invalid(what.to_string(), m);
    let scalar = IxDyn(&[]);
    Ok(Some(if kind == MLFeatureType::MultiArray {
        return Ok(None);
    } else if kind == MLFeatureType::String {
        // SAFETY: the feature value holds a string.
        let s = unsafe { fv.stringValue() }.to_string();
        Tensor::Str(ArrayD::from_elem(scalar, s))
    } else if kind == MLFeatureType::Int64 {
        // SAFETY: the feature value holds an int64.
        let v = unsafe { fv.int64Value() };
        let v = i32::try_from(v).map_err(|_| bad(format!("int64 {v} does not fit int32")))?;
        Tensor::I32(ArrayD::from_elem(scalar, v))
    } else if kind == MLFeatureType::Dictionary {
        // SAFETY: the feature value holds a dictionary.
        let dict = unsafe { fv.dictionaryValue() };
        let (keys, values) = dict.to_vecs();
        let mut entries = Vec::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(&values) {
            let key = if let Some(s) = k.downcast_ref::<NSString>() {
                super::DictKey::Str(s.to_string())
            } else if let Some(n) = k.downcast_ref::<NSNumber>() {
                super::DictKey::Int(n.longLongValue())
            } else {
                return Err(bad(
                    "a dictionary key that is neither a string nor a number".into(),
                ));
            };
            entries.push((key, v.doubleValue()));
        }
        Tensor::Dict(super::dictionary_from_entries(entries, what)?)
    } else {
        return Err(bad(format!(
            "feature type {} is not supported (multi-arrays, strings, int64 and dictionaries are)",
            kind.0
        )));
    }))
}

fn write_state(state: &MLState, name: &str, value: &Tensor) -> Result<()> {
    let bytes = contiguous_bytes(value);
    let elem = value.dtype().size();
    let failure: RefCell<Option<AppleError>> = RefCell::new(None);
    let block = RcBlock::new(|arr: NonNull<MLMultiArray>| {
        // SAFETY: Core ML passes the state's array for the duration of the handler.
        let arr = unsafe { arr.as_ref() };
        let inner = RcBlock::new(
            |ptr: NonNull<c_void>, len: NSInteger, strides: NonNull<NSArray<NSNumber>>| {
                // SAFETY: the strides array is valid for the handler.
                let strides = unsafe { strides.as_ref() };
                let n = usize::try_from(len).unwrap_or(0);
                // SAFETY: Core ML passes the state's storage, `n` writable bytes, for the
                // duration of the handler; nothing else touches it meanwhile.
                let dst = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), n) };
                let r = cf::usizes(strides, "state strides")
                    .and_then(|s| super::scatter_strided(dst, &bytes, elem, value.shape(), &s));
                if let Err(e) = r {
                    *failure.borrow_mut() = Some(AppleError::invalid(
                        format!("state {name:?}"),
                        e.to_string(),
                    ));
                }
            },
        );
        // SAFETY: the handler runs synchronously inside this call.
        unsafe { arr.getMutableBytesWithHandler(&inner) };
    });
    // SAFETY: the handler runs synchronously inside this call.
    unsafe { state.getMultiArrayForStateNamed_handler(&NSString::from_str(name), &block) };
    drop(block);
    failure.into_inner().map_or(Ok(()), Err)
}

fn read_state(state: &MLState, spec: &FeatureSpec) -> Result<Tensor> {
    let out: RefCell<Option<Result<Tensor>>> = RefCell::new(None);
    let block = RcBlock::new(|arr: NonNull<MLMultiArray>| {
        // SAFETY: Core ML passes the state's array for the duration of the handler.
        let arr = unsafe { arr.as_ref() };
        *out.borrow_mut() = Some(array_to_tensor(arr, &format!("state {:?}", spec.name)));
    });
    // SAFETY: the handler runs synchronously inside this call.
    unsafe { state.getMultiArrayForStateNamed_handler(&NSString::from_str(&spec.name), &block) };
    drop(block);
    let t = out.into_inner().ok_or_else(|| {
        AppleError::null("getMultiArrayForStateNamed:handler:", spec.name.clone())
    })??;
    Ok(if t.dtype() == spec.dtype {
        t
    } else {
        t.cast(spec.dtype)
    })
}
