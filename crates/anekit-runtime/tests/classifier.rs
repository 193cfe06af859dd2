//! Classifier models (coremltools `ClassifierConfig`, ending in `classify`) on the CPU
//! backend: the label and the dictionary of probabilities reach the caller, typed, and match
//! PyTorch (fixtures `classifier_str_fp32_ios15` and `classifier_int_fp32_ios16`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{
    ComputeUnits, DictKeys, ElementType, Engine, LoadOptions, LoadedModel, NamedTensors, Tensor,
    npy,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn load(name: &str) -> LoadedModel {
    let model = Model::open(fixtures().join(format!("models/{name}.mlpackage"))).unwrap();
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        ..Default::default()
    };
    Engine::new().load(Arc::new(model), &options).unwrap()
}

fn predict(name: &str) -> NamedTensors {
    let x = npy::read(fixtures().join(format!("data/{name}/inputs/x.npy"))).unwrap();
    load(name)
        .predict(&NamedTensors::from([("x".to_string(), x)]))
        .unwrap()
}

/// The PyTorch softmax probabilities, in label order.
fn reference_probs(name: &str) -> Vec<f32> {
    let t =
        npy::read(fixtures().join(format!("data/{name}/outputs/classLabel_probs.npy"))).unwrap();
    t.to_f32().iter().copied().collect()
}

fn reference_label(name: &str) -> Tensor {
    npy::read(fixtures().join(format!("data/{name}/outputs/classLabel.npy"))).unwrap()
}

#[test]
fn output_specs_say_string_int_and_dictionary() {
    let m = load("classifier_str_fp32_ios15");
    let outs: Vec<(&str, ElementType)> = m
        .outputs()
        .iter()
        .map(|s| (s.name.as_str(), s.dtype))
        .collect();
    assert_eq!(
        outs,
        [
            ("classLabel", ElementType::Str),
            ("classLabel_probs", ElementType::Dict)
        ]
    );
    let m = load("classifier_int_fp32_ios16");
    let outs: Vec<(&str, ElementType)> = m
        .outputs()
        .iter()
        .map(|s| (s.name.as_str(), s.dtype))
        .collect();
    assert_eq!(
        outs,
        [
            ("classLabel", ElementType::I32),
            ("classLabel_probs", ElementType::Dict)
        ]
    );
}

#[test]
fn string_labels_match_pytorch() {
    let name = "classifier_str_fp32_ios15";
    let out = predict(name);
    let label = &out["classLabel"];
    assert_eq!(label.dtype(), ElementType::Str);
    assert_eq!(label.shape(), &[] as &[usize]);
    assert_eq!(label, &reference_label(name));
    assert_eq!(label.as_str(), Some("bird"));

    let probs = out["classLabel_probs"].as_dict().expect("a dictionary");
    assert_eq!(
        probs.keys(),
        &DictKeys::Str(vec!["cat".into(), "dog".into(), "bird".into()])
    );
    let want = reference_probs(name);
    for (i, key) in ["cat", "dog", "bird"].iter().enumerate() {
        let got = probs.get(key).unwrap();
        assert!(
            (got - f64::from(want[i])).abs() <= 1e-4,
            "{key}: {got} vs PyTorch {}",
            want[i]
        );
    }
    assert!((probs.values().iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(probs.get("horse"), None);
    assert_eq!(probs.get_int(0), None);
}

#[test]
fn integer_labels_match_pytorch() {
    let name = "classifier_int_fp32_ios16";
    let out = predict(name);
    let label = &out["classLabel"];
    assert_eq!(label, &Tensor::I32(ndarray_scalar(11)));
    assert_eq!(label, &reference_label(name));

    let probs = out["classLabel_probs"].as_dict().expect("a dictionary");
    assert_eq!(probs.keys(), &DictKeys::Int(vec![7, 3, 11]));
    let want = reference_probs(name);
    for (i, key) in [7i64, 3, 11].into_iter().enumerate() {
        let got = probs.get_int(key).unwrap();
        assert!(
            (got - f64::from(want[i])).abs() <= 1e-4,
            "{key}: {got} vs PyTorch {}",
            want[i]
        );
    }
    // The label is the key of the largest probability.
    let best = probs
        .entries()
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(best.0, "11");
}

fn ndarray_scalar(v: i32) -> ndarray::ArrayD<i32> {
    ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), v)
}

#[test]
fn string_and_dictionary_tensors_round_trip() {
    // Strings through .npy (numpy's `<U` unicode arrays).
    let t = Tensor::str(&[2], vec!["cat".into(), "grüße".into()]).unwrap();
    let back = npy::parse(&npy::to_bytes(&t), "mem").unwrap();
    assert_eq!(back, t);
    let scalar = Tensor::str(&[], vec![String::new()]).unwrap();
    assert_eq!(npy::parse(&npy::to_bytes(&scalar), "mem").unwrap(), scalar);
    assert_eq!(t.nbytes(), 3 + "grüße".len());
    assert!(t.to_f32().iter().all(|v| v.is_nan()));
    // Numbers cast to strings and dictionaries.
    let n = Tensor::i32(&[2], vec![4, 5]).unwrap();
    assert_eq!(
        n.cast(ElementType::Str),
        Tensor::str(&[2], vec!["4".into(), "5".into()]).unwrap()
    );
    let d = n.cast(ElementType::Dict);
    assert_eq!(d.as_dict().unwrap().get_int(1), Some(5.0));
    assert_eq!(d.shape(), &[2]);
    // A dictionary written as .npy keeps its values.
    let v = npy::parse(&npy::to_bytes(&d), "mem").unwrap();
    assert_eq!(v.to_f32().iter().copied().collect::<Vec<_>>(), [4.0, 5.0]);
}
