//! Backend selection (`LoadOptions::backend`, `--backend auto|coreml|ane|cpu`) with mock
//! backends standing in for Core ML and the direct Neural Engine path, and the lazily
//! synchronised backend copy of a `State`.

use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::engine::{
    Availability, Backend, BackendState, LoadOptions, ModelInstance, ShapeSpec,
};
use anekit_runtime::{
    BackendChoice, BackendKind, ComputeUnits, ElementType, Engine, FeatureSpec, Result, State,
    Tensor,
};

/// A backend that only reports its kind and availability.
struct Mock(BackendKind, Availability);

impl Backend for Mock {
    fn kind(&self) -> BackendKind {
        self.0
    }
    fn availability(&self) -> Availability {
        self.1.clone()
    }
    fn load(&self, _: Arc<Model>, _: &LoadOptions) -> Result<Box<dyn ModelInstance>> {
        unreachable!("selection tests never load")
    }
}

fn engine(coreml: Option<Availability>, ane: Option<Availability>) -> Engine {
    let mut e = Engine::new();
    if let Some(a) = coreml {
        e.register(Arc::new(Mock(BackendKind::CoreMl, a)));
    }
    if let Some(a) = ane {
        e.register(Arc::new(Mock(BackendKind::Ane, a)));
    }
    e
}

#[test]
fn auto_keeps_core_ml_first_and_says_why() {
    let e = engine(Some(Availability::Available), Some(Availability::Available));
    let (_, s) = e.select(ComputeUnits::All, BackendChoice::Auto).unwrap();
    assert_eq!(s.backend, BackendKind::CoreMl, "{s:?}");
    assert_eq!(s.choice, BackendChoice::Auto);
    assert!(
        s.reasons[0].contains("direct ANE backend is used only when asked for"),
        "{:?}",
        s.reasons
    );
    // cpu-only never goes to Core ML.
    let (_, s) = e
        .select(ComputeUnits::CpuOnly, BackendChoice::Auto)
        .unwrap();
    assert_eq!(s.backend, BackendKind::Cpu);
}

#[test]
fn auto_falls_back_to_the_cpu_and_names_what_was_missing() {
    let e = engine(None, None);
    let (_, s) = e
        .select(ComputeUnits::CpuAndNe, BackendChoice::Auto)
        .unwrap();
    assert_eq!(s.backend, BackendKind::Cpu);
    let all = s.reasons.join(" | ");
    assert!(all.contains("Core ML is unavailable"), "{all}");
    assert!(all.contains("running on the CPU instead"), "{all}");
}

#[test]
fn a_named_backend_runs_or_fails_with_its_reason() {
    let e = engine(
        Some(Availability::Available),
        Some(Availability::Unavailable(
            "private API _ANEInMemoryModel is missing on this OS version".into(),
        )),
    );
    let (_, s) = e.select(ComputeUnits::All, BackendChoice::CoreMl).unwrap();
    assert_eq!(s.backend, BackendKind::CoreMl);
    let err = e
        .select(ComputeUnits::All, BackendChoice::Ane)
        .err()
        .expect("the direct backend is unavailable")
        .to_string();
    assert!(err.contains("--backend ane"), "{err}");
    assert!(err.contains("_ANEInMemoryModel is missing"), "{err}");
    // Never a silent fallback to another backend.
    assert!(!err.contains("runs all"), "{err}");

    let (_, s) = e.select(ComputeUnits::All, BackendChoice::Cpu).unwrap();
    assert_eq!(s.backend, BackendKind::Cpu);
    assert!(
        s.reasons.iter().any(|r| r.contains("--backend cpu")),
        "{s:?}"
    );

    let none = engine(None, None);
    let err = none
        .select(ComputeUnits::All, BackendChoice::CoreMl)
        .err()
        .expect("no Core ML here")
        .to_string();
    assert!(err.contains("Core ML is unavailable"), "{err}");
}

#[test]
fn the_direct_backend_refuses_compute_units_without_the_neural_engine() {
    let e = engine(None, Some(Availability::Available));
    let (_, s) = e
        .select(ComputeUnits::CpuAndNe, BackendChoice::Ane)
        .unwrap();
    assert_eq!(s.backend, BackendKind::Ane);
    for u in [ComputeUnits::CpuOnly, ComputeUnits::CpuAndGpu] {
        let err = e
            .select(u, BackendChoice::Ane)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("exclude it"), "{err}");
    }
}

#[test]
fn backend_choices_parse() {
    for c in BackendChoice::ALL {
        assert_eq!(c.name().parse::<BackendChoice>(), Ok(c));
    }
    assert_eq!(BackendChoice::parse("Core ML"), Some(BackendChoice::CoreMl));
    assert!(
        "gpu"
            .parse::<BackendChoice>()
            .unwrap_err()
            .contains("auto, coreml, ane, cpu")
    );
    assert_eq!(LoadOptions::default().backend, BackendChoice::Auto);
}

/// A backend copy that counts how often it is read and written.
struct Copy {
    owner: usize,
    value: Tensor,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    writes: Vec<String>,
}

impl BackendState for Copy {
    fn owner(&self) -> usize {
        self.owner
    }
    fn read(&self, _name: &str) -> Result<Tensor> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.value.clone())
    }
    fn write(&mut self, name: &str, value: &Tensor) -> Result<()> {
        self.writes.push(name.to_string());
        self.value = value.clone();
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[test]
fn an_attached_backend_copy_is_read_lazily_and_gets_the_writes() {
    let spec = FeatureSpec {
        name: "k".into(),
        dtype: ElementType::F32,
        shape: ShapeSpec::Fixed { shape: vec![2] },
    };
    let mut st = State::new(&[spec]);
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    st.attach(Box::new(Copy {
        owner: 7,
        value: Tensor::f32(&[2], vec![0.0, 0.0]).unwrap(),
        reads: reads.clone(),
        writes: Vec::new(),
    }))
    .unwrap();
    assert!(
        st.backend_mut(8).is_none(),
        "another model's copy is not handed out"
    );
    // A prediction updated the copy: nothing is read until asked for.
    st.backend_mut(7)
        .unwrap()
        .write("k", &Tensor::f32(&[2], vec![1.0, 2.0]).unwrap())
        .unwrap();
    st.backend_updated();
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        st.read("k").unwrap(),
        &Tensor::f32(&[2], vec![1.0, 2.0]).unwrap()
    );
    assert_eq!(
        st.read("k").unwrap(),
        &Tensor::f32(&[2], vec![1.0, 2.0]).unwrap()
    );
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "read once"
    );
    // A caller's write is pending for the copy.
    st.write("k", Tensor::f32(&[2], vec![5.0, 6.0]).unwrap())
        .unwrap();
    let pending = st.take_pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, "k");
    assert!(st.take_pending().is_empty());
    // A clone is detached and holds the values.
    let c = st.clone();
    assert_eq!(
        c.read("k").unwrap(),
        &Tensor::f32(&[2], vec![5.0, 6.0]).unwrap()
    );
    assert_eq!(c, st);
    // Wrong shapes are refused as before.
    assert!(
        st.write("k", Tensor::f32(&[3], vec![0.0; 3]).unwrap())
            .is_err()
    );
    st.detach().unwrap();
    assert!(st.backend_mut(7).is_none());
}
