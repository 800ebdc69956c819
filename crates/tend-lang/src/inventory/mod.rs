//! Inventories: INI and YAML files, directories, host ranges, groups, patterns.
