//! Helpers: small MIL programs analysed on a chip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::text::parse_without_weights;
use anekit_plan::cost::Unit;
use anekit_plan::graph::{InputFlex, InputInfo};
use anekit_plan::report::{OpReport, Report};
use anekit_plan::{ComputeUnits, Options, analyze_program};

/// A program with one function `main` of `opset` taking `inputs` and running `body`,
/// returning `outputs`.
pub fn program(opset: &str, inputs: &str, body: &str, outputs: &str) -> String {
    format!(
        "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<{opset}>({inputs}) {{\n{body}\n  }} -> ({outputs});\n}}\n"
    )
}

/// Analyse MIL text on `chip` with all compute units.
pub fn analyze(text: &str, chip: &str) -> Report {
    analyze_with(text, chip, ComputeUnits::All, &[])
}

/// Analyse MIL text that fails validation anyway (`Options::allow_invalid`).
pub fn analyze_invalid(text: &str, chip: &str) -> Report {
    let p = parse_without_weights(text, "test.mil").expect("test program parses");
    analyze_program(
        &p,
        &[],
        None,
        &Options {
            chip: chip.into(),
            allow_invalid: true,
            compare: false,
            ..Options::default()
        },
    )
    .expect("analysis")
}

/// Analyse MIL text with options and input facts.
pub fn analyze_with(text: &str, chip: &str, units: ComputeUnits, inputs: &[InputInfo]) -> Report {
    let p = parse_without_weights(text, "test.mil").expect("test program parses");
    analyze_program(
        &p,
        inputs,
        None,
        &Options {
            chip: chip.into(),
            compute_units: units,
            function: None,
            compare: false,
            ..Options::default()
        },
    )
    .expect("analysis")
}

/// The op named `name`.
pub fn op<'r>(r: &'r Report, name: &str) -> &'r OpReport {
    r.ops
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no op {name}"))
}

/// Whether rule `rule` fired on op `name`.
pub fn fired(r: &Report, name: &str, rule: &str) -> bool {
    op(r, name).rules.iter().any(|x| x == rule)
}

/// The unit of op `name`.
pub fn unit(r: &Report, name: &str) -> Unit {
    op(r, name).unit
}

/// A flexible input fact.
pub fn flex(name: &str, shape: &[u64], flex: InputFlex) -> InputInfo {
    InputInfo {
        name: name.into(),
        shape: Some(shape.to_vec()),
        flex,
    }
}

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Analyse a fixture model.
pub fn fixture(name: &str, chip: &str, units: ComputeUnits) -> Report {
    let m =
        anekit_mil::model::Model::open(fixtures().join("models").join(format!("{name}.mlpackage")))
            .expect("fixture opens");
    anekit_plan::analyze_model(
        &m,
        &Options {
            chip: chip.into(),
            compute_units: units,
            function: None,
            compare: false,
            ..Options::default()
        },
    )
    .expect("analysis")
}
