//! The floors the README describes, read from the code: each top-level module imports
//! only from its own floor or those below, and no two top-level modules import each
//! other (directly or through a cycle). A new module must be given a floor here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Floor of every top-level module under `src/`.
const FLOORS: &[(&str, u8)] = &[
    // 1 knowledge: pure
    ("archive", 1),
    ("cloudtrail", 1),
    ("config", 1),
    ("fault", 1),
    ("names", 1),
    ("progress", 1),
    ("records", 1),
    ("secret", 1),
    ("telemetry", 1),
    ("key_failure", 1),
    ("truncated", 1),
    // 2 edges: the only code that talks to clouds and disks
    ("cloudtrail_api", 2),
    ("files", 2),
    ("federation_io", 2),
    ("monitor", 2),
    ("queue", 2),
    ("state", 2),
    ("storage", 2),
    ("xmlsec", 2),
    // 3 domains
    ("events", 3),
    ("failover", 3),
    ("federation", 3),
    ("integrity", 3),
    ("sync", 3),
    // 4 runtime
    ("app", 4),
    ("cli", 4),
    ("serve", 4),
];

/// Modules of the domain floor never import one another: each stands on the edges.
const DOMAINS: &[&str] = &["events", "failover", "federation", "integrity", "sync"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/sync/copy.rs` -> `sync`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The file's module path below `src/` (`src/sync/copy.rs` -> `["sync", "copy"]`,
/// `src/sync/mod.rs` -> `["sync"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut segs: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first-level names of a `{...}` group starting just after its `{`, over any
/// number of lines, skipping nested groups.
fn group_heads(inner: &str) -> Vec<String> {
    let (mut depth, mut start, mut out) = (0usize, 0usize, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(ident(&inner[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(ident(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.into_iter().filter(|n| !n.is_empty()).collect()
}

/// Every top-level module a file names: `crate::X`, `crate::{X, Y}` groups over several
/// lines, and `super::super::X` paths that climb to the crate root. Comments are not code.
fn crate_refs_in(module: &[String], text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(inner) = after.strip_prefix('{') {
            out.extend(group_heads(inner));
        } else {
            let name = ident(after);
            if !name.is_empty() {
                out.insert(name);
            }
        }
        rest = after;
    }
    // `super::` k times from a file k levels deep reaches the crate root.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        let preceded = rest[..at].ends_with("super::");
        let mut after = &rest[at..];
        let mut k = 0;
        while let Some(a) = after.strip_prefix("super::") {
            k += 1;
            after = a;
        }
        if !preceded && k >= module.len() && !module.is_empty() {
            match after.strip_prefix('{') {
                Some(inner) => out.extend(group_heads(inner)),
                None => {
                    let name = ident(after);
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            }
        }
        rest = &rest[at + "super::".len() * k.max(1)..];
    }
    out
}

/// As [`crate_refs_in`] for a file directly under a top-level module.
fn crate_refs(text: &str) -> BTreeSet<String> {
    crate_refs_in(&["m".to_string(), "f".to_string()], text)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).expect("read source");
        let path = module_path(&src, &file);
        let targets = edges.entry(module.clone()).or_default();
        for r in crate_refs_in(&path, &text) {
            if r != module {
                targets.insert(r);
            }
        }
    }
    edges
}

#[test]
fn every_module_has_a_floor() {
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    for module in graph().keys() {
        assert!(
            floors.contains_key(module.as_str()),
            "src/{module} has no floor in tests/architecture.rs"
        );
    }
}

#[test]
fn no_module_imports_from_a_floor_above_it_and_domains_stand_apart() {
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, targets) in graph() {
        let Some(&f) = floors.get(from.as_str()) else { continue };
        for to in targets {
            let Some(&t) = floors.get(to.as_str()) else { continue };
            if t > f {
                wrong.push(format!("{from} (floor {f}) imports {to} (floor {t})"));
            }
            if DOMAINS.contains(&from.as_str()) && DOMAINS.contains(&to.as_str()) {
                wrong.push(format!("domain {from} imports domain {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "upward or sideways imports:\n{}", wrong.join("\n"));
}

#[test]
fn there_are_no_cycles_between_top_level_modules() {
    let g = graph();
    // Depth-first search with colours; report the first cycle found.
    fn visit(
        node: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if !g.contains_key(next) {
                continue;
            }
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in g.keys() {
        if !state.contains_key(node) {
            let cycle = visit(node, &g, &mut state, &mut Vec::new());
            assert!(cycle.is_none(), "cycle: {}", cycle.unwrap_or_default().join(" -> "));
        }
    }
}

#[test]
fn integrity_lives_outside_failover() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert!(src.join("integrity/verify.rs").exists() && src.join("integrity/keys.rs").exists());
    assert!(!src.join("failover/verify.rs").exists() && !src.join("failover/keys.rs").exists());
}

#[test]
fn the_reader_sees_groups_over_lines_and_climbs_through_super() {
    let text = "use crate::{\n    archive::x,\n    state::{a, b},\n    sync,\n};\nuse super::super::cli::run;\n";
    let deep = ["sync".to_string(), "copy".to_string()];
    let refs = crate_refs_in(&deep, text);
    assert_eq!(
        refs,
        ["archive", "cli", "state", "sync"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // One `super::` from a nested file stays inside its own module.
    let refs = crate_refs_in(&deep, "use super::plan;\n");
    assert!(refs.is_empty(), "{refs:?}");
    // From a top-level module's mod.rs, `super::` is the crate root.
    let refs = crate_refs_in(&["sync".to_string()], "use super::cli;\n");
    assert!(refs.contains("cli"));
}

#[test]
fn the_reader_sees_imports_in_groups_and_paths() {
    let refs = crate_refs("use crate::{archive::x, state};\nlet a = crate::sync::f(); // crate::cli\n");
    assert_eq!(
        refs,
        ["archive", "state", "sync"].iter().map(|s| s.to_string()).collect()
    );
}

/// What only an edge may do: touch the disk, the network, a C library, or memory unsafely.
/// Each entry is a pattern searched in code (comments and `#[cfg(test)]` modules are
/// left out) and what it means.
const EDGE_ONLY: &[(&str, &str)] = &[
    ("std::fs", "reads or writes files"),
    ("tokio::fs", "reads or writes files"),
    ("TcpStream", "opens network sockets"),
    ("TcpListener", "opens network sockets"),
    ("UdpSocket", "opens network sockets"),
    ("tokio::net", "opens network sockets"),
    ("UnixStream", "opens sockets"),
    ("std::process::Command", "starts processes"),
    ("File::open", "reads files"),
    ("File::create", "writes files"),
    ("reqwest", "makes HTTP requests"),
    ("hyper::", "makes HTTP requests"),
    ("azure_core::http::Pipeline", "makes HTTP requests"),
    ("azure_storage_blob", "talks to Azure Storage"),
    ("aws_sdk_", "talks to AWS"),
    ("aws_config", "loads AWS configuration"),
    ("libxml::", "calls libxml2 (FFI)"),
    ("samael", "calls xmlsec through samael (FFI)"),
    ("extern \"C\"", "declares foreign functions"),
    ("extern {", "declares foreign functions"),
    ("unsafe ", "uses unsafe code"),
    ("unsafe{", "uses unsafe code"),
];

/// Code of a file without comments, strings' contents aside, and without the test
/// module at its end (tests may use the disk: they are not the floor's code).
fn code_of(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push(code);
    }
    out.join("\n")
}

/// Knowledge is pure and domains stand on the edges' traits: every file read, network
/// call, process, foreign function and `unsafe` block sits in an edge (or the runtime).
#[test]
fn io_ffi_and_unsafe_live_only_in_edges_and_the_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else { continue };
        let Some(&floor) = floors.get(module.as_str()) else {
            continue;
        };
        if floor != 1 && floor != 3 {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let code = code_of(&text);
        for (pattern, what) in EDGE_ONLY {
            if code.contains(pattern) {
                let rel = file.strip_prefix(&src).unwrap_or(&file).display().to_string();
                wrong.push(format!("src/{rel} (floor {floor}) {what}: `{pattern}`"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "I/O, FFI or unsafe outside the edges (move it behind an edge trait):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_io_check_sees_code_and_not_comments_or_tests() {
    let text = "// std::fs in a comment\nlet x = 1; // tokio::fs::read\nfn f() { unsafe { g() } }\n#[cfg(test)]\nmod tests { use std::fs; }\n";
    let code = code_of(text);
    assert!(!code.contains("std::fs") && !code.contains("tokio::fs"));
    assert!(code.contains("unsafe "));
}
