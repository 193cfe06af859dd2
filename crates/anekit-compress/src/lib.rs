//! anekit-compress (work in progress).
