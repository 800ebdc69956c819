//! Inventory loading (INI, then YAML) from text must never panic, and its errors must name a file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend_lang::inventory::Inventory;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    for name in ["hosts.ini", "hosts.yml"] {
        let path = dir.path().join(name);
        if std::fs::write(&path, data).is_err() {
            return;
        }
        if let Err(d) = Inventory::load(&[path.to_string_lossy().into_owned()]) {
            assert!(!d.loc.file.is_empty(), "error without a file: {d}");
        }
        let _ = std::fs::remove_file(&path);
    }
});
