//! anekit-apple (work in progress).
