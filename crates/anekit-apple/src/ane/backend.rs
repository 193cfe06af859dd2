//! The direct Neural Engine backend over the private AppleNeuralEngine framework (macOS,
//! cargo feature `private-ane`; type-checked, never run: docs/apple.md).
//!
//! Sequence (maderix/ANE `training/ane_runtime.h`, computer-graphics-tools/ane
//! `crates/ane/src/client.rs`, tmc/apple `x/ane/compile.go`):
//!
//! 1. check the program's inputs and outputs ([`super::layout::plan_io`]) and export it for
//!    the chip found at run time ([`super::target`]) — a program refused here costs no
//!    compile;
//! 2. `+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:]` →
//!    `+[_ANEInMemoryModel inMemoryModelWithDescriptor:]`;
//! 3. the model's files are written to `-localModelPath` (the framework's own folder, where
//!    it keeps the compiled program `-compiledModelExists` checks; older code staged them
//!    under `NSTemporaryDirectory()/<hexStringIdentifier>`, the fallback here) and kept:
//!    deleting them would make every run compile again;
//! 4. `-compileWithQoS:options:error:` unless the system still has the program, then
//!    `-loadWithQoS:options:error:` — under a process-wide lock, the framework keeping
//!    per-process state across compiles (it leaks per compile, maderix/ANE#19);
//! 5. `-modelAttributes` binds every tensor to its symbol index and strided layout
//!    ([`super::layout`]); a layout that cannot be filled correctly unloads the program and
//!    fails;
//! 6. one IOSurface per tensor, sized from its layout, wrapped by
//!    `+[_ANEIOSurfaceObject objectWithIOSurface:]`, in one `_ANERequest` whose slots follow
//!    the size order of maderix/ANE#47 → `-evaluateWithQoS:options:request:error:` per
//!    prediction; `-unloadWithQoS:error:` when the last model using the program is dropped.
//!
//! Identical programs loaded twice in one process share one loaded program (reference
//! counted). Every selector is checked against its type encoding ([`crate::private::require`])
//! before the first message, every message runs inside `@try` (an exception becomes an
//! error), and each private class and selector is declared once, with its signature, in
//! [`classes`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use anekit_mil::model::Model;
use anekit_mil::summary::ModelSummary;
use anekit_runtime::RuntimeError;
use anekit_runtime::engine::{
    Availability, Backend, BackendKind, FeatureSpec, LoadOptions, ModelInstance, NamedTensors,
    State,
};
use objc2::rc::{Retained, autoreleasepool};
use objc2::runtime::{AnyClass, AnyObject, Sel};
use objc2::sel;
use objc2_core_foundation::{CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_foundation::{
    NSArray, NSData, NSDictionary, NSError, NSNumber, NSString, NSTemporaryDirectory,
};
use objc2_io_surface::{
    IOSurfaceLockOptions, IOSurfaceRef, kIOSurfaceAllocSize, kIOSurfaceBytesPerElement,
    kIOSurfaceBytesPerRow, kIOSurfaceHeight, kIOSurfacePixelFormat, kIOSurfaceWidth,
};

use super::layout::{
    Binding, TensorPlan, bind, ordered_specs, pack, parse_attributes, plan_io, request_order,
    tensor_bytes, tensor_from_bytes, unpack,
};
use super::target::{MilProfile, generation_of, profile_for};
use super::{
    AneStage, CacheEntry, CacheIndex, CompileBudget, Exported, cache_limit, export_for, hint, now_s,
};
use crate::error::{AppleError, Result};
use crate::exception::guard;
use crate::private::{class, require};
use crate::probe::{BOOL, OBJ, PTR, Signature, UINT};

/// QoS passed to compile, load, evaluate and unload (`QOS_CLASS_DEFAULT`; every value 0–63
/// behaves alike, maderix/ANE `training/m5result.md`).
const QOS: u32 = 21;

/// The private classes, each selector declared once with its signature. Nothing here may be
/// called before [`api`] has checked that the class exists and every selector has the type
/// encoding declared (objc2 looks a class up by name on first use and would panic on a
/// missing one; a changed signature would be undefined behaviour).
#[allow(missing_docs)]
mod classes {
    use objc2::rc::Retained;
    use objc2::runtime::{AnyObject, NSObject};
    use objc2::{extern_class, extern_methods};
    use objc2_foundation::{NSArray, NSData, NSDictionary, NSError, NSNumber, NSString};
    use objc2_io_surface::IOSurfaceRef;

    extern_class!(
        /// `_ANEInMemoryModelDescriptor`: MIL text and weights.
        #[unsafe(super(NSObject))]
        #[name = "_ANEInMemoryModelDescriptor"]
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct Descriptor;
    );

    impl Descriptor {
        extern_methods!(
            /// `+modelWithMILText:weights:optionsPlist:` (NSData, NSDictionary, nil) → a
            /// descriptor or nil. The weights dictionary maps each `@model_path/...` file to
            /// `{offset: 0, data: NSData}` (maderix/ANE `ane_runtime.h`).
            #[unsafe(method(modelWithMILText:weights:optionsPlist:))]
            #[unsafe(method_family = none)]
            pub unsafe fn with_mil(
                mil: &NSData,
                weights: &NSDictionary<NSString, AnyObject>,
                options: Option<&AnyObject>,
            ) -> Option<Retained<Self>>;
        );
    }

    extern_class!(
        /// `_ANEInMemoryModel`: a program compiled and loaded from a descriptor.
        #[unsafe(super(NSObject))]
        #[name = "_ANEInMemoryModel"]
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct InMemoryModel;
    );

    impl InMemoryModel {
        extern_methods!(
            /// `+inMemoryModelWithDescriptor:` → the model or nil.
            #[unsafe(method(inMemoryModelWithDescriptor:))]
            #[unsafe(method_family = none)]
            pub unsafe fn with_descriptor(descriptor: &Descriptor) -> Option<Retained<Self>>;

            /// `-hexStringIdentifier`: the program's identity (hash of text and weights).
            #[unsafe(method(hexStringIdentifier))]
            #[unsafe(method_family = none)]
            pub unsafe fn hex_string_identifier(&self) -> Option<Retained<NSString>>;

            /// `-localModelPath`: the folder the framework compiles from and keeps.
            #[unsafe(method(localModelPath))]
            #[unsafe(method_family = none)]
            pub unsafe fn local_model_path(&self) -> Option<Retained<NSString>>;

            /// `-compiledModelExists`: whether the system still has the compiled program.
            #[unsafe(method(compiledModelExists))]
            #[unsafe(method_family = none)]
            pub unsafe fn compiled_model_exists(&self) -> bool;

            /// `-purgeCompiledModel`: drops the compiled program from the system's cache.
            #[unsafe(method(purgeCompiledModel))]
            #[unsafe(method_family = none)]
            pub unsafe fn purge_compiled_model(&self);

            /// `-compileWithQoS:options:error:` (unsigned int, NSDictionary, NSError**) → BOOL.
            #[unsafe(method(compileWithQoS:options:error:_))]
            #[unsafe(method_family = none)]
            pub unsafe fn compile(
                &self,
                qos: u32,
                options: &NSDictionary<NSString, AnyObject>,
            ) -> Result<(), Retained<NSError>>;

            /// `-loadWithQoS:options:error:` (unsigned int, NSDictionary, NSError**) → BOOL.
            #[unsafe(method(loadWithQoS:options:error:_))]
            #[unsafe(method_family = none)]
            pub unsafe fn load(
                &self,
                qos: u32,
                options: &NSDictionary<NSString, AnyObject>,
            ) -> Result<(), Retained<NSError>>;

            /// `-evaluateWithQoS:options:request:error:` (unsigned int, NSDictionary,
            /// `_ANERequest`, NSError**) → BOOL.
            #[unsafe(method(evaluateWithQoS:options:request:error:_))]
            #[unsafe(method_family = none)]
            pub unsafe fn evaluate(
                &self,
                qos: u32,
                options: &NSDictionary<NSString, AnyObject>,
                request: &Request,
            ) -> Result<(), Retained<NSError>>;

            /// `-unloadWithQoS:error:` (unsigned int, NSError**) → BOOL.
            #[unsafe(method(unloadWithQoS:error:_))]
            #[unsafe(method_family = none)]
            pub unsafe fn unload(&self, qos: u32) -> Result<(), Retained<NSError>>;

            /// `-model`: the underlying `_ANEModel` (nil before compiling).
            #[unsafe(method(model))]
            #[unsafe(method_family = none)]
            pub unsafe fn model(&self) -> Option<Retained<AnyObject>>;

            /// `-modelAttributes`: the compiled program's description (NSDictionary).
            #[unsafe(method(modelAttributes))]
            #[unsafe(method_family = none)]
            pub unsafe fn model_attributes(&self) -> Option<Retained<AnyObject>>;
        );
    }

    extern_class!(
        /// `_ANEIOSurfaceObject`: an IOSurface the request reads or writes.
        #[unsafe(super(NSObject))]
        #[name = "_ANEIOSurfaceObject"]
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct SurfaceObject;
    );

    impl SurfaceObject {
        extern_methods!(
            /// `+objectWithIOSurface:` (IOSurfaceRef, retained by the object) → object or nil.
            #[unsafe(method(objectWithIOSurface:))]
            #[unsafe(method_family = none)]
            pub unsafe fn with_surface(surface: &IOSurfaceRef) -> Option<Retained<Self>>;
        );
    }

    extern_class!(
        /// `_ANERequest`: the surfaces of one evaluation, by symbol index.
        #[unsafe(super(NSObject))]
        #[name = "_ANERequest"]
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct Request;
    );

    impl Request {
        extern_methods!(
            /// `+requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:`
            /// (seven objects; weights buffer and perf stats nil) → request or nil.
            #[unsafe(method(requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:))]
            #[unsafe(method_family = none)]
            pub unsafe fn with_surfaces(
                inputs: &NSArray<SurfaceObject>,
                input_indices: &NSArray<NSNumber>,
                outputs: &NSArray<SurfaceObject>,
                output_indices: &NSArray<NSNumber>,
                weights_buffer: Option<&AnyObject>,
                perf_stats: Option<&AnyObject>,
                procedure_index: &NSNumber,
            ) -> Option<Retained<Self>>;
        );
    }
}

use classes::{Descriptor, InMemoryModel, Request, SurfaceObject};

const NONE: &[&[&str]] = &[];

fn sig(
    class_method: bool,
    returns: &'static [&'static str],
    args: &'static [&'static [&'static str]],
) -> Signature {
    Signature {
        class_method,
        returns,
        args,
    }
}

/// The selectors [`classes`] declares, with the encodings checked before use.
fn checks() -> Result<Vec<(&'static AnyClass, Sel, Signature)>> {
    let descriptor = class(c"_ANEInMemoryModelDescriptor")?;
    let model = class(c"_ANEInMemoryModel")?;
    let request = class(c"_ANERequest")?;
    let surface = class(c"_ANEIOSurfaceObject")?;
    Ok(vec![
        (
            descriptor,
            sel!(modelWithMILText:weights:optionsPlist:),
            sig(true, OBJ, &[OBJ, OBJ, OBJ]),
        ),
        (
            model,
            sel!(inMemoryModelWithDescriptor:),
            sig(true, OBJ, &[OBJ]),
        ),
        (model, sel!(hexStringIdentifier), sig(false, OBJ, NONE)),
        (model, sel!(compiledModelExists), sig(false, BOOL, NONE)),
        (
            model,
            sel!(compileWithQoS:options:error:),
            sig(false, BOOL, &[UINT, OBJ, PTR]),
        ),
        (
            model,
            sel!(loadWithQoS:options:error:),
            sig(false, BOOL, &[UINT, OBJ, PTR]),
        ),
        (
            model,
            sel!(evaluateWithQoS:options:request:error:),
            sig(false, BOOL, &[UINT, OBJ, OBJ, PTR]),
        ),
        (
            model,
            sel!(unloadWithQoS:error:),
            sig(false, BOOL, &[UINT, PTR]),
        ),
        (model, sel!(modelAttributes), sig(false, OBJ, NONE)),
        (surface, sel!(objectWithIOSurface:), sig(true, OBJ, &[PTR])),
        (
            request,
            sel!(requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:),
            sig(true, OBJ, &[OBJ, OBJ, OBJ, OBJ, OBJ, OBJ, OBJ]),
        ),
    ])
}

/// The optional selectors: used when present.
const VOID: &[&str] = &["v"];

fn has(cls: &AnyClass, sel: Sel, signature: &Signature) -> bool {
    require(cls, sel, signature).is_ok()
}

/// Checks the framework once per process; later calls return the first result.
fn api() -> Result<()> {
    static CHECKED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let run = || -> Result<()> {
                for (cls, sel, signature) in checks()? {
                    require(cls, sel, &signature)?;
                }
                Ok(())
            };
            run().map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| AppleError::Unavailable {
            feature: "direct Neural Engine backend",
            reason,
        })
}

/// Why the backend cannot run on this OS (`None` when it can).
pub(crate) fn api_reason() -> Option<String> {
    api().err().map(|e| match e {
        AppleError::Unavailable { reason, .. } => reason,
        other => other.to_string(),
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

/// The process-wide lock around compile, load and unload.
fn framework_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The MIL profile of this Mac's chip (`ANEKIT_ANE_GENERATION=h13` forces a generation).
pub fn detect_profile() -> MilProfile {
    if let Ok(g) = std::env::var("ANEKIT_ANE_GENERATION") {
        return profile_for(Some(g.trim()));
    }
    let soc = crate::iokit::soc_identity();
    let brand = crate::sysctl::string("machdep.cpu.brand_string");
    let keys: Vec<&str> = soc
        .soc_id
        .iter()
        .chain(brand.iter())
        .map(String::as_str)
        .collect();
    let generation = generation_of(&keys);
    if generation.is_none() {
        tracing::warn!(
            ?keys,
            "chip not in the catalog: using the newest MIL profile"
        );
    }
    profile_for(generation.as_deref())
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

    /// Drops a program from the system's compile cache and from the index (its files too).
    pub fn purge(&self, exported: &Exported) -> Result<()> {
        api()?;
        let _lock = framework_lock();
        let model = describe(exported)?;
        let local = local_path(&model)?;
        let purgeable = has(
            class(c"_ANEInMemoryModel")?,
            sel!(purgeCompiledModel),
            &sig(false, VOID, NONE),
        );
        if purgeable {
            // SAFETY: `purgeCompiledModel` was checked just above (no argument, → void).
            guard("-[_ANEInMemoryModel purgeCompiledModel]", || unsafe {
                model.purge_compiled_model()
            })?;
        }
        let _ = std::fs::remove_dir_all(&local);
        self.index.forget(&exported.key());
        Ok(())
    }
}

impl Backend for AneBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ane
    }

    fn availability(&self) -> Availability {
        match super::availability_reason() {
            None => Availability::Available,
            Some(reason) => Availability::Unavailable(reason),
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

/// A loaded program, shared by every model of identical content in this process.
struct Program {
    model: Retained<InMemoryModel>,
    key: String,
    attributes: super::layout::Attributes,
    /// Serialises evaluations of this program (the object is not documented thread-safe).
    evaluate: Mutex<()>,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _lock = framework_lock();
        let r = guard("-[_ANEInMemoryModel unloadWithQoS:error:]", || {
            autoreleasepool(|_| {
                // SAFETY: `unloadWithQoS:error:` was checked by `api()` before the program
                // was loaded; no evaluation is running (the last reference is going away).
                unsafe { self.model.unload(QOS) }
            })
        });
        match r {
            Ok(Ok(())) => tracing::debug!(key = %self.key, "ANE program unloaded"),
            Ok(Err(e)) => {
                tracing::warn!(error = %ane_error(AneStage::Unload, Some(&e)), "ANE unload failed")
            }
            Err(e) => tracing::warn!(error = %e, "ANE unload threw"),
        }
    }
}

struct SharedProgram(Program);

// SAFETY: the framework objects are reference-counted Objective-C objects not bound to a
// thread (maderix/ANE and the `ane` crate drive them from worker threads); evaluations are
// serialised by `Program::evaluate`, and compile/load/unload by the process-wide lock.
unsafe impl Send for SharedProgram {}
// SAFETY: as above; shared access only reads the retained pointers under those locks.
unsafe impl Sync for SharedProgram {}

/// The registry of loaded programs by cache key.
fn programs() -> &'static Mutex<HashMap<String, Weak<SharedProgram>>> {
    static P: OnceLock<Mutex<HashMap<String, Weak<SharedProgram>>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

fn nsdata(bytes: &[u8]) -> Retained<NSData> {
    NSData::with_bytes(bytes)
}

fn describe(exported: &Exported) -> Result<Retained<InMemoryModel>> {
    let entries: Vec<Retained<NSDictionary<NSString, AnyObject>>> = exported
        .weights
        .iter()
        .map(|w| {
            NSDictionary::from_retained_objects(
                &[&*NSString::from_str("offset"), &*NSString::from_str("data")],
                &[
                    crate::cf::any_object(NSNumber::new_u64(0)),
                    crate::cf::any_object(nsdata(&w.bytes)),
                ],
            )
        })
        .collect();
    let paths: Vec<Retained<NSString>> = exported
        .weights
        .iter()
        .map(|w| NSString::from_str(&w.path))
        .collect();
    let path_refs: Vec<&NSString> = paths.iter().map(|p| &**p).collect();
    let weights: Retained<NSDictionary<NSString, AnyObject>> = NSDictionary::from_retained_objects(
        &path_refs,
        &entries
            .into_iter()
            .map(crate::cf::any_object)
            .collect::<Vec<_>>(),
    );
    let mil = nsdata(exported.mil.as_bytes());
    // SAFETY: checked by `api()`: three objects (MIL text, weights dictionary, nil options)
    // → descriptor or nil.
    let desc = guard(
        "+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:]",
        || unsafe { Descriptor::with_mil(&mil, &weights, None) },
    )?
    .ok_or_else(|| ane_error(AneStage::Describe, None))?;
    // SAFETY: checked by `api()`: descriptor → model or nil.
    guard(
        "+[_ANEInMemoryModel inMemoryModelWithDescriptor:]",
        || unsafe { InMemoryModel::with_descriptor(&desc) },
    )?
    .ok_or_else(|| ane_error(AneStage::Describe, None))
}

/// The program's folder: `-localModelPath` when the class has it, else the staging folder
/// of maderix/ANE and the `ane` crate (`NSTemporaryDirectory()/<hexStringIdentifier>`).
fn local_path(model: &InMemoryModel) -> Result<PathBuf> {
    let cls = class(c"_ANEInMemoryModel")?;
    if has(cls, sel!(localModelPath), &sig(false, OBJ, NONE)) {
        // SAFETY: selector and signature checked just above; → NSString or nil.
        let p = guard("-[_ANEInMemoryModel localModelPath]", || unsafe {
            model.local_model_path()
        })?;
        if let Some(p) = p {
            return Ok(PathBuf::from(p.to_string()));
        }
    }
    // SAFETY: checked by `api()`: → NSString or nil.
    let hex = guard("-[_ANEInMemoryModel hexStringIdentifier]", || unsafe {
        model.hex_string_identifier()
    })?
    .ok_or_else(|| ane_error(AneStage::Describe, None))?;
    Ok(PathBuf::from(NSTemporaryDirectory().to_string()).join(hex.to_string()))
}

/// Writes `model.mil` and the weight files where the compiler reads them (the framework's
/// own staging "does not save files properly", maderix/ANE#54).
fn stage_files(dir: &std::path::Path, exported: &Exported) -> Result<()> {
    std::fs::create_dir_all(dir.join("weights")).map_err(|e| AppleError::io(dir, e))?;
    let mil = dir.join("model.mil");
    std::fs::write(&mil, exported.mil.as_bytes()).map_err(|e| AppleError::io(&mil, e))?;
    for w in &exported.weights {
        let p = dir.join(w.relative_path());
        std::fs::write(&p, &w.bytes).map_err(|e| AppleError::io(&p, e))?;
    }
    Ok(())
}

fn compile_and_load(backend: &AneBackend, exported: &Exported, key: &str) -> Result<Program> {
    let _lock = framework_lock();
    let model = describe(exported)?;
    let local = local_path(&model)?;
    let os_build = crate::coreml::os_build();
    // SAFETY: checked by `api()`: → BOOL.
    let exists = guard("-[_ANEInMemoryModel compiledModelExists]", || unsafe {
        model.compiled_model_exists()
    })?;
    let cached = exists && backend.index.lookup(key, &os_build).is_some();
    let options: Retained<NSDictionary<NSString, AnyObject>> = NSDictionary::new();
    let compile = || -> Result<()> {
        stage_files(&local, exported)?;
        let n = backend.budget.acquire()?;
        tracing::info!(
            key,
            compile = n,
            limit = backend.budget.limit(),
            "compiling for the Neural Engine"
        );
        // SAFETY: checked by `api()`: (unsigned int, NSDictionary, NSError**) → BOOL.
        guard(
            "-[_ANEInMemoryModel compileWithQoS:options:error:]",
            || unsafe { model.compile(QOS, &options) },
        )?
        .map_err(|e| ane_error(AneStage::Compile, Some(&e)))
    };
    if cached {
        tracing::debug!(key, path = %local.display(), "ANE program from the system cache");
    } else {
        compile()?;
    }
    // SAFETY: checked by `api()`: (unsigned int, NSDictionary, NSError**) → BOOL.
    let load = || {
        guard(
            "-[_ANEInMemoryModel loadWithQoS:options:error:]",
            || unsafe { model.load(QOS, &options) },
        )
    };
    if let Err(e) = load()? {
        if !cached {
            return Err(ane_error(AneStage::Load, Some(&e)));
        }
        // The system purged the program since it was indexed: compile it once more.
        tracing::info!(key, error = %e.localizedDescription(), "cached ANE program did not load; compiling again");
        backend.index.forget(key);
        compile()?;
        load()?.map_err(|e| ane_error(AneStage::Load, Some(&e)))?;
    }
    // Loaded: from here on an error must unload it (no leaked loaded program).
    let mut program = Program {
        model,
        key: key.to_string(),
        attributes: super::layout::Attributes::default(),
        evaluate: Mutex::new(()),
    };
    program.attributes = read_attributes(&program.model)?;
    backend.index.record(&CacheEntry {
        key: key.to_string(),
        identifier: local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        os_build,
        function: exported.function.clone(),
        local_path: Some(local.display().to_string()),
        last_used: now_s(),
    })?;
    for old in backend.index.trim(cache_limit()) {
        if let Some(p) = old.local_path {
            tracing::debug!(key = %old.key, path = %p, "ANE program trimmed from the cache");
            let _ = std::fs::remove_dir_all(p);
        }
    }
    Ok(program)
}

fn read_attributes(model: &InMemoryModel) -> Result<super::layout::Attributes> {
    let getter = sig(false, OBJ, NONE);
    let has_inner = has(class(c"_ANEInMemoryModel")?, sel!(model), &getter);
    let value = guard("-[_ANEInMemoryModel modelAttributes]", || {
        autoreleasepool(|_| -> Option<crate::value::PropertyValue> {
            // tmc/apple x/ane reads the attributes of the inner `_ANEModel`; the in-memory
            // model's own `modelAttributes` is the fallback.
            let inner = if has_inner {
                // SAFETY: `model` was checked just above (no argument, → object or nil).
                unsafe { model.model() }
            } else {
                None
            };
            let attrs: Option<Retained<AnyObject>> = match inner {
                Some(m) if require(m.class(), sel!(modelAttributes), &getter).is_ok() => {
                    // SAFETY: the inner object's `modelAttributes` was checked just above
                    // (no argument, → object or nil).
                    unsafe { objc2::msg_send![&*m, modelAttributes] }
                }
                // SAFETY: `modelAttributes` was checked by `api()` (→ object or nil).
                _ => unsafe { model.model_attributes() },
            };
            let attrs = attrs?;
            let dict = attrs.downcast_ref::<NSDictionary>()?;
            // SAFETY: NSDictionary is toll-free bridged to CFDictionary (Apple's "Toll-Free
            // Bridged Types"); the reference lives as long as `attrs`.
            let cf: &CFType = unsafe { &*(dict as *const NSDictionary).cast::<CFType>() };
            Some(anekit_apple_sys::cf::to_value(cf))
        })
    })?;
    let value = value.ok_or_else(|| AppleError::null("modelAttributes", "no dictionary"))?;
    parse_attributes(&value)
}

fn shared_program(backend: &AneBackend, exported: &Exported) -> Result<Arc<SharedProgram>> {
    let key = exported.key();
    let mut registry = programs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    registry.retain(|_, w| w.strong_count() > 0);
    if let Some(p) = registry.get(&key).and_then(Weak::upgrade) {
        tracing::debug!(key, "ANE program already loaded in this process");
        return Ok(p);
    }
    let p = Arc::new(SharedProgram(compile_and_load(backend, exported, &key)?));
    registry.insert(key, Arc::downgrade(&p));
    Ok(p)
}

fn surface(layout: &super::layout::LiveLayout) -> Result<CFRetained<IOSurfaceRef>> {
    let alloc = layout.alloc_size();
    let rows = alloc / layout.row_stride.max(1);
    let n = |v: usize| CFNumber::new_i64(i64::try_from(v).unwrap_or(i64::MAX));
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
    // The tensor's planes as rows of RowStride bytes (tmc/apple x/ane surface.go
    // `createSurfaceForLayout`).
    let values = [
        n(layout.width),
        n(rows),
        n(layout.elem),
        n(layout.row_stride),
        n(alloc),
        n(0),
    ];
    let value_refs: Vec<&CFType> = values.iter().map(|v| (**v).as_ref()).collect();
    let props = CFDictionary::<CFString, CFType>::from_slices(&keys, &value_refs);
    // SAFETY: a dictionary of IOSurface property keys to CFNumbers.
    let s = unsafe { IOSurfaceRef::new(props.as_opaque()) }
        .ok_or_else(|| AppleError::null("IOSurfaceCreate", format!("{alloc} bytes")))?;
    if s.alloc_size() < alloc {
        return Err(AppleError::invalid(
            "IOSurface",
            format!("{} bytes allocated, {alloc} asked for", s.alloc_size()),
        ));
    }
    Ok(s)
}

/// One tensor's slot of the request.
struct Slot {
    binding: Binding,
    surface: CFRetained<IOSurfaceRef>,
}

impl Slot {
    fn write(&self, bytes: &[u8]) -> Result<()> {
        let name = &self.binding.plan.name;
        if bytes.len() > self.surface.alloc_size() {
            return Err(AppleError::invalid(
                format!("input {name:?}"),
                "larger than its surface",
            ));
        }
        // SAFETY: locking a surface this model owns; unlocked below.
        let kr = unsafe {
            self.surface
                .lock(IOSurfaceLockOptions::empty(), std::ptr::null_mut())
        };
        if kr != 0 {
            return Err(AppleError::status("IOSurfaceLock", kr, name.clone()));
        }
        // SAFETY: the locked surface has at least `bytes.len()` bytes at its base address
        // (checked against its allocation size above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.surface.base_address().as_ptr().cast::<u8>(),
                bytes.len(),
            )
        };
        // SAFETY: unlocking what was locked above.
        unsafe {
            self.surface
                .unlock(IOSurfaceLockOptions::empty(), std::ptr::null_mut())
        };
        Ok(())
    }

    fn read(&self) -> Result<Vec<u8>> {
        let name = &self.binding.plan.name;
        let len = self.binding.layout.alloc_size();
        if len > self.surface.alloc_size() {
            return Err(AppleError::invalid(
                format!("output {name:?}"),
                "smaller than its layout",
            ));
        }
        let mut out = vec![0u8; len];
        // SAFETY: read-only lock of a surface this model owns; unlocked below.
        let kr = unsafe {
            self.surface
                .lock(IOSurfaceLockOptions::ReadOnly, std::ptr::null_mut())
        };
        if kr != 0 {
            return Err(AppleError::status("IOSurfaceLock", kr, name.clone()));
        }
        // SAFETY: the locked surface has at least `len` bytes (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.surface.base_address().as_ptr().cast::<u8>(),
                out.as_mut_ptr(),
                len,
            )
        };
        // SAFETY: unlocking what was locked above.
        unsafe {
            self.surface
                .unlock(IOSurfaceLockOptions::ReadOnly, std::ptr::null_mut())
        };
        Ok(out)
    }
}

/// The request and its surfaces.
struct Io {
    request: Retained<Request>,
    inputs: Vec<Slot>,
    outputs: Vec<Slot>,
}

struct SendIo(Io);

// SAFETY: the request and surfaces are reference-counted objects not bound to a thread;
// every use goes through the `Mutex` in `AneModel`.
unsafe impl Send for SendIo {}

/// A program loaded on the Neural Engine, with its own request and surfaces.
pub struct AneModel {
    program: Arc<SharedProgram>,
    io: Mutex<SendIo>,
    function: String,
    inputs: Vec<FeatureSpec>,
    outputs: Vec<FeatureSpec>,
    profile: MilProfile,
}

impl std::fmt::Debug for AneModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AneModel")
            .field("function", &self.function)
            .field("key", &self.program.0.key)
            .field("generation", &self.profile.generation)
            .finish_non_exhaustive()
    }
}

fn make_io(
    program: &Program,
    ins: &[TensorPlan],
    outs: &[TensorPlan],
    profile: &MilProfile,
) -> Result<Io> {
    let a = &program.attributes;
    let bi = bind(ins, &a.input_symbols, &a.inputs, false)?;
    let bo = bind(outs, &a.output_symbols, &a.outputs, true)?;
    let in_order = request_order(&bi, false, profile.io.ordered_surfaces)?;
    let out_order = request_order(&bo, true, profile.io.ordered_surfaces)?;
    let slots = |b: Vec<Binding>, order: &[usize]| -> Result<Vec<Slot>> {
        let mut b: Vec<Option<Binding>> = b.into_iter().map(Some).collect();
        order
            .iter()
            .map(|&i| {
                let binding = b[i]
                    .take()
                    .ok_or_else(|| AppleError::invalid("request", "slot bound twice"))?;
                Ok(Slot {
                    surface: surface(&binding.layout)?,
                    binding,
                })
            })
            .collect()
    };
    let inputs = slots(bi, &in_order)?;
    let outputs = slots(bo, &out_order)?;
    let wrap = |s: &Slot| -> Result<Retained<SurfaceObject>> {
        // SAFETY: checked by `api()`: IOSurfaceRef → `_ANEIOSurfaceObject` (retains it).
        guard("+[_ANEIOSurfaceObject objectWithIOSurface:]", || unsafe {
            SurfaceObject::with_surface(&s.surface)
        })?
        .ok_or_else(|| ane_error(AneStage::Prepare, None))
    };
    let in_objs: Vec<Retained<SurfaceObject>> = inputs.iter().map(wrap).collect::<Result<_>>()?;
    let out_objs: Vec<Retained<SurfaceObject>> = outputs.iter().map(wrap).collect::<Result<_>>()?;
    let indices = |slots: &[Slot]| -> Retained<NSArray<NSNumber>> {
        let v: Vec<Retained<NSNumber>> = slots
            .iter()
            .map(|s| NSNumber::new_usize(s.binding.symbol_index))
            .collect();
        NSArray::from_retained_slice(&v)
    };
    let in_array = NSArray::from_retained_slice(&in_objs);
    let out_array = NSArray::from_retained_slice(&out_objs);
    let (in_idx, out_idx) = (indices(&inputs), indices(&outputs));
    let procedure = NSNumber::new_usize(0);
    // SAFETY: checked by `api()`: seven objects (input objects, their symbol indices, output
    // objects, their symbol indices, nil weights buffer, nil perf stats, procedure 0).
    let request = guard("+[_ANERequest requestWithInputs:…]", || unsafe {
        Request::with_surfaces(
            &in_array, &in_idx, &out_array, &out_idx, None, None, &procedure,
        )
    })?
    .ok_or_else(|| ane_error(AneStage::Prepare, None))?;
    Ok(Io {
        request,
        inputs,
        outputs,
    })
}

impl AneModel {
    /// Checks, exports, compiles (unless cached or already loaded) and loads `function` of
    /// `model` for this Mac's chip.
    pub fn load(backend: &AneBackend, model: &Model, options: &LoadOptions) -> Result<Self> {
        Self::load_with(backend, model, options, detect_profile())
    }

    /// As [`AneModel::load`], for the chip `profile` describes.
    pub fn load_with(
        backend: &AneBackend,
        model: &Model,
        options: &LoadOptions,
        profile: MilProfile,
    ) -> Result<Self> {
        api()?;
        let function = match &options.function {
            Some(f) => f.clone(),
            None => ModelSummary::of(model)
                .default_function
                .ok_or_else(|| AppleError::invalid("model", "no default function; choose one"))?,
        };
        let program = model
            .require_program()
            .map_err(|e| AppleError::invalid("model", e.to_string()))?;
        // Everything that can refuse the program does so before the compile.
        let (inputs, outputs) = ordered_specs(model, &function)?;
        let (in_plans, out_plans) = plan_io(&inputs, &outputs, profile.io)?;
        let exported = export_for(program, &function, &profile)?;
        let shared = autoreleasepool(|_| shared_program(backend, &exported))?;
        // A binding failure drops `shared`: the last reference unloads the program.
        let io = autoreleasepool(|_| make_io(&shared.0, &in_plans, &out_plans, &profile))?;
        Ok(Self {
            program: shared,
            io: Mutex::new(SendIo(io)),
            function,
            inputs,
            outputs,
            profile,
        })
    }

    /// The cache key of the loaded program.
    pub fn key(&self) -> &str {
        &self.program.0.key
    }

    fn predict_impl(&self, inputs: &NamedTensors) -> Result<NamedTensors> {
        let guard_io = self
            .io
            .lock()
            .map_err(|_| AppleError::invalid("ANE model", "lock poisoned by an earlier panic"))?;
        let io = &guard_io.0;
        autoreleasepool(|_| {
            for s in &io.inputs {
                let plan = &s.binding.plan;
                let t = inputs.get(&plan.name).ok_or_else(|| {
                    AppleError::invalid(format!("input {:?}", plan.name), "missing")
                })?;
                if t.shape() != plan.shape.as_slice() {
                    return Err(AppleError::invalid(
                        format!("input {:?}", plan.name),
                        format!(
                            "shape {:?} given, the program takes {:?}",
                            t.shape(),
                            plan.shape
                        ),
                    ));
                }
                let dense = tensor_bytes(t, plan.dtype)?;
                s.write(&pack(&dense, &s.binding.layout)?)?;
            }
            let options: Retained<NSDictionary<NSString, AnyObject>> = NSDictionary::new();
            {
                let _one = self
                    .program
                    .0
                    .evaluate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // SAFETY: `evaluateWithQoS:options:request:error:` was checked by `api()`;
                // the request refers to this model's surfaces (its lock is held) and the
                // program is loaded (its `Arc` is held); evaluations of the program are
                // serialised by `evaluate`.
                guard(
                    "-[_ANEInMemoryModel evaluateWithQoS:options:request:error:]",
                    || unsafe { self.program.0.model.evaluate(QOS, &options, &io.request) },
                )?
                .map_err(|e| ane_error(AneStage::Evaluate, Some(&e)))?;
            }
            let mut out = NamedTensors::new();
            for s in &io.outputs {
                let plan = &s.binding.plan;
                let dense = unpack(&s.read()?, &s.binding.layout)?;
                out.insert(
                    plan.name.clone(),
                    tensor_from_bytes(&dense, plan.dtype, &plan.shape)?,
                );
            }
            Ok(out)
        })
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
        self.predict_impl(inputs)
            .map_err(|e| RuntimeError::Predict(e.to_string()))
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
