//! anekit-metrics (work in progress).
