//! A Core AI module with several ops anekit cannot translate into MIL (written by
//! coreai-core's authoring API with source locations, and run by coreai-core:
//! `scripts/make_coreai_fixtures.py --only untranslatable`): every one of them is named,
//! graph by graph, with its location and a reason, not only the first; an op fed by a
//! refused one is not named again; the graph without such ops is translated.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::path::PathBuf;

use anekit_coreai::CoreAiModel;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coreai")
}

#[test]
fn every_untranslatable_op_is_named_with_its_location() {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("untranslatable.json")).unwrap())
            .unwrap();
    let m = CoreAiModel::open(root().join(spec["path"].as_str().unwrap())).unwrap();
    let t = &m.translation;
    let got: Vec<(String, String, Option<String>)> = t
        .untranslated
        .iter()
        .map(|u| (u.graph.clone(), u.op.clone(), u.location.clone()))
        .collect();
    let want: Vec<(String, String, Option<String>)> = spec["untranslated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["graph"].as_str().unwrap().to_string(),
                u["op"].as_str().unwrap().to_string(),
                u["location"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(got, want);
    // Every named op is in the module as coreai-core counts it.
    for (_, op, _) in &want {
        assert!(spec["op_counts"].get(op).is_some(), "{op}");
    }
    // Each reason says what is missing.
    let reason = |op: &str| {
        t.untranslated
            .iter()
            .find(|u| u.op.ends_with(op))
            .map(|u| u.reason.clone())
            .unwrap()
    };
    assert!(
        reason("scan_v1").contains("product"),
        "{}",
        reason("scan_v1")
    );
    assert!(reason("max_pool_2d_v1").contains("dilated"));
    assert!(reason("bitwise_and_v1").contains("bitwise"));
    // Both failed graphs are listed with all of their ops; the good one is translated.
    assert_eq!(
        t.failed.keys().collect::<Vec<_>>(),
        ["main", "second"],
        "{:?}",
        t.failed
    );
    assert_eq!(t.failed["main"].matches("aicode.primitive.").count(), 3);
    assert!(t.program.functions.contains_key("fine"));
}

#[test]
fn a_module_with_no_translatable_graph_names_every_op() {
    // The same module without its good graph: opening fails, and the error names all four.
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("untranslatable.json")).unwrap())
            .unwrap();
    let asset =
        anekit_format::aimodel::AiModel::open(root().join(spec["path"].as_str().unwrap())).unwrap();
    let mut module = asset.module.clone();
    let graphs = anekit_coreai::model::graphs(&module).unwrap();
    let fine = graphs.iter().find(|g| g.name == "fine").unwrap().op;
    for b in &mut module.ir.blocks {
        b.ops.retain(|&o| o != fine);
    }
    let e = anekit_coreai::to_mil::translate(&module, Default::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("4 op(s) cannot be translated to MIL"),
        "{text}"
    );
    for op in [
        "scan_v1",
        "max_pool_2d_v1",
        "bitwise_and_v1",
        "bitwise_xor_v1",
    ] {
        assert!(text.contains(op), "{op} not in {text}");
    }
    assert!(text.contains("untranslatable.py:20:9"), "{text}");
}
