//! Lookup plugins: `lookup(...)` and `query(...)`.
