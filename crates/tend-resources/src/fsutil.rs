//! File-system helpers shared by the file modules.
