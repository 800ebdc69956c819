//! Facts: what a host is, gathered natively (no Python), as `ansible_facts`.
