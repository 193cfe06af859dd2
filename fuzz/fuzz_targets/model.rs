#![no_main]
//! The whole model path on MIL programs: parse → validate → analyze → CPU run on small
//! inputs (`anekit_fuzz::model`), with a structure-aware mutator that changes shapes,
//! dtypes, op parameters, references and op types (`anekit_fuzz::model::mutate`); inputs
//! it cannot parse fall back to libFuzzer's byte-level mutations.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    anekit_fuzz::model::model(data);
});

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    // Every fourth call (and whenever the input is not a program) mutates bytes, so that
    // the parser's error paths and the mutator's blind spots are reached too.
    if seed % 4 != 0
        && let Some(out) = anekit_fuzz::model::mutate(&data[..size], u64::from(seed))
        && out.len() <= max_size
    {
        data[..out.len()].copy_from_slice(&out);
        return out.len();
    }
    libfuzzer_sys::fuzzer_mutate(data, size, max_size)
});
