//! Models are untrusted: the analysis and the rewrites must answer (a report or an error),
//! never panic, on every op of every opset in every configuration coremltools builds (the
//! op zoo of anekit-mil's oracle tests, ~3.7k ops with fixed and flexible dims), on hostile
//! shapes (huge or zero extents), and on every chip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::{Dim, Program, ValueType};
use anekit_plan::graph::{InputFlex, InputInfo};
use anekit_plan::{ComputeUnits, OptimizeOptions, Options, analyze_program, optimize_passes};

fn zoo(name: &str) -> Program {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../anekit-mil/tests/validate_oracle_data")
        .join(format!("{name}.mlpackage"));
    Model::open(&path).unwrap().program.unwrap()
}

fn flexible_inputs(p: &Program, f: &str) -> Vec<InputInfo> {
    p.functions[f]
        .inputs
        .iter()
        .filter_map(|i| {
            let t = i.ty.as_tensor()?;
            let shape: Vec<u64> = t
                .shape
                .as_ref()?
                .iter()
                .map(|d| d.fixed().unwrap_or(7))
                .collect();
            Some(InputInfo {
                name: i.name.clone(),
                shape: Some(shape),
                flex: InputFlex::Range,
            })
        })
        .collect()
}

fn hostile(p: &Program, extent: u64) -> Program {
    let mut p = p.clone();
    for f in p.functions.values_mut() {
        for b in f.blocks.values_mut() {
            for op in &mut b.operations {
                for o in &mut op.outputs {
                    if let ValueType::Tensor(t) = &mut o.ty
                        && let Some(s) = &mut t.shape
                    {
                        for d in s.iter_mut() {
                            *d = Dim::Fixed(extent);
                        }
                    }
                }
            }
        }
    }
    p
}

#[test]
fn every_zoo_op_is_analysed_and_rewritten_without_panic() {
    let mut reports = 0;
    for name in ["zoo_ios15", "zoo_ios16", "zoo_ios17", "zoo_ios18"] {
        let p = zoo(name);
        for f in p.functions.keys() {
            for (chip, units) in [
                ("A14", ComputeUnits::All),
                ("M3", ComputeUnits::CpuAndNe),
                ("M5", ComputeUnits::CpuAndGpu),
            ] {
                let opts = Options {
                    chip: chip.into(),
                    compute_units: units,
                    function: Some(f.clone()),
                    compare: chip == "A14",
                    ..Options::default()
                };
                for inputs in [Vec::new(), flexible_inputs(&p, f)] {
                    let r = analyze_program(&p, &inputs, None, &opts).unwrap();
                    assert!(r.estimate.latency_ms.is_finite());
                    let _ = anekit_plan::render::text(&r, true);
                    let _ = anekit_plan::render::html(&r);
                    reports += 1;
                }
                for extent in [0u64, u64::MAX / 3] {
                    let h = hostile(&p, extent);
                    // Refused when invalid; analysed anyway, without panicking, when asked.
                    if let Ok(r) = analyze_program(&h, &[], None, &opts) {
                        assert!(!r.estimate.latency_ms.is_nan());
                    }
                    let anyway = Options {
                        allow_invalid: true,
                        ..opts.clone()
                    };
                    if let Ok(r) = analyze_program(&h, &[], None, &anyway) {
                        assert!(!r.estimate.latency_ms.is_nan());
                        let _ = anekit_plan::render::text(&r, true);
                    }
                }
            }
        }
        for o in [
            OptimizeOptions::default(),
            OptimizeOptions {
                fp16: true,
                linear_to_conv: true,
                ..Default::default()
            },
        ] {
            let mut q = p.clone();
            // The zoo calls ops in configurations a real model would not; a rewrite may refuse
            // (error), but must not panic or leave an invalid program unreported.
            if optimize_passes(&o).run(&mut q).is_ok() {
                let before = anekit_mil::validate::check(&p).diagnostics.is_empty();
                if before {
                    assert!(
                        anekit_mil::validate::check(&q).diagnostics.is_empty(),
                        "{name}"
                    );
                }
            }
        }
    }
    assert!(reports >= 24);
}
