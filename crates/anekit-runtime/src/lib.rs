//! anekit-runtime (work in progress).
