//! anekit-plan (work in progress).
