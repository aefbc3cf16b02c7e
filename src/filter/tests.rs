//! Table-driven tests of both dialects.
