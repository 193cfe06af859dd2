#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    anekit_fuzz::neuralnetwork(data);
});
