//! anekit-mil (work in progress).
