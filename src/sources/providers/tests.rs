//! Provider normalization tests.
