//! The documentation (README.md and docs/*.md): every relative link and `#anchor` leads to a
//! file and heading that exist, and the parts made from the code match it.
//!
//! `UPDATE_DOCS=1 cargo test --test it docs::` rewrites the generated parts instead of failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use linkrunner_sync::model::figures;

const UPDATE: &str = "UPDATE_DOCS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pages of `docs/`, sorted.
fn doc_pages() -> Vec<PathBuf> {
    let dir = root().join("docs");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "no pages in {}", dir.display());
    pages
}

/// The README, deploy/README.md, then every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("deploy/README.md")];
    pages.extend(doc_pages());
    pages
}

/// The page as prose: fenced code blocks blanked (their lines kept, empty, so line numbers
/// stay right). Panics on a fence left open.
fn prose(path: &Path, text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(!fenced, "{}: a code fence is never closed", path.display());
    out
}

/// Prose without inline code, which may run across lines (`"due for the full\n  scan"`):
/// what is between backticks is dropped, the backticks kept.
fn without_code_spans(prose: &str) -> String {
    prose
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 0 { part } else { "" })
        .collect::<Vec<_>>()
        .join("``")
}

/// The targets of the inline links (`[text](target)`) of `prose`, with their line numbers.
fn link_targets(prose: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (number, line) in prose.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push((number + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation removed, spaces made `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a heading met again gets `-1`, `-2`, ... as on GitHub.
fn anchors(path: &Path) -> BTreeSet<String> {
    let text = read(path);
    let mut found = BTreeSet::new();
    for line in prose(path, &text).lines() {
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(&line[hashes..]);
        let mut name = base.clone();
        let mut n = 0;
        while found.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        found.insert(name);
    }
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(anchor("Exit codes"), "exit-codes");
    assert_eq!(
        anchor("The schema, for analysts"),
        "the-schema-for-analysts"
    );
    assert_eq!(anchor("Queries in `sql/`"), "queries-in-sql");
    assert_eq!(anchor("The run's figures"), "the-runs-figures");
    assert_eq!(anchor("Poolers and TLS"), "poolers-and-tls");
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = without_code_spans(&prose(&page, &read(&page)));
        for (line, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let at = format!("{}:{line}: {target}", relative(&page));
            if !file.exists() {
                broken.push(format!("{at}: no file {}", relative(&file)));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if file.extension().is_none_or(|e| e != "md") {
                broken.push(format!("{at}: an anchor into a file that is not markdown"));
            } else if !anchors(&file).contains(fragment) {
                broken.push(format!("{at}: no heading #{fragment}"));
            }
        }
    }
    assert!(checked > 0, "no relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_maps_every_page_and_each_page_names_its_reader() {
    let readme = read(&root().join("README.md"));
    for page in doc_pages() {
        let name = page.file_name().unwrap().to_string_lossy();
        assert!(
            readme.contains(&format!("](docs/{name})")),
            "README.md does not list docs/{name}"
        );
        let text = read(&page);
        let mut lines = text.lines();
        assert!(
            lines.next().is_some_and(|l| l.starts_with("# ")),
            "docs/{name} starts with its title"
        );
        assert_eq!(
            lines.next(),
            Some(""),
            "docs/{name}: a blank line after the title"
        );
        assert!(
            lines.next().is_some_and(|l| l.starts_with("For ")),
            "docs/{name}: the first paragraph says who the page is for (\"For ...\")"
        );
    }
}

#[test]
fn every_example_query_is_listed_for_analysts() {
    let page = read(&root().join("docs/analysts.md"));
    let dir = root().join("sql");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".sql") {
            assert!(
                page.contains(&format!("](../sql/{name})")),
                "docs/analysts.md does not list sql/{name}"
            );
        }
    }
}

const OPEN: &str = "<!-- generated: ";
const CLOSE: &str = "<!-- /generated -->";

/// The text between `<!-- generated: NAME -->` and `<!-- /generated -->`, each on a line of its
/// own, as a byte range of `text`.
fn generated(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let open = format!("\n{OPEN}{name} -->\n");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("{CLOSE}\n"))?;
    Some(start..end)
}

#[test]
fn generated_blocks_are_closed_and_named() {
    for page in pages() {
        let text = read(&page);
        let mut open: Option<&str> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix(OPEN) {
                assert!(open.is_none(), "{}: {line} inside a block", relative(&page));
                open = Some(name.strip_suffix(" -->").expect("a marker on its own line"));
            } else if line == CLOSE {
                assert!(
                    open.take().is_some(),
                    "{}: {CLOSE} unopened",
                    relative(&page)
                );
            }
        }
        assert!(open.is_none(), "{}: {open:?} never closed", relative(&page));
    }
    let operating = read(&root().join("docs/operating.md"));
    for name in ["flags sync", "bounds", "figures"] {
        let block = generated(&operating, name)
            .unwrap_or_else(|| panic!("docs/operating.md has no block {name:?}"));
        let block = &operating[block];
        assert!(
            block.starts_with('|') && block.ends_with("|\n\n"),
            "the block {name:?} holds a table, then a blank line"
        );
    }
}

/// The table of the run's figures, as `src/model/figures.rs` declares them, and the blank line
/// that ends it before the closing marker (else the marker would be read as one more row).
fn figures_table() -> String {
    let mut table = String::from("| figure | meaning |\n|---|---|\n");
    for figure in figures::all() {
        let help = figure.help.replace('|', "\\|");
        table.push_str(&format!("| `{}` | {help} |\n", figure.name));
    }
    table.push('\n');
    table
}

#[test]
fn the_figures_table_is_the_codes() {
    let path = root().join("docs/operating.md");
    let text = read(&path);
    let block = generated(&text, "figures").expect("docs/operating.md has a figures block");
    let table = figures_table();
    if text[block.clone()] == table {
        return;
    }
    if std::env::var_os(UPDATE).is_some_and(|v| v == "1") {
        let mut updated = text.clone();
        updated.replace_range(block, &table);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/operating.md's table of figures differs from src/model/figures.rs; regenerate it \
         with `{UPDATE}=1 cargo test --test it docs::`.\nExpected:\n{table}\nFound:\n{}",
        &text[block]
    );
}

/// The table of what each bounded flag accepts, as `src/bounds.rs` declares it (the same bounds
/// its parser checks and its `--help` states).
fn bounds_table() -> String {
    let command = linkrunner_sync::cli::command();
    let mut table = String::from("| flag | accepted |\n|---|---|\n");
    for (sub, flag, accepts) in linkrunner_sync::bounds::BOUNDS {
        let every = *sub == linkrunner_sync::bounds::EVERY;
        let Some(sub_command) = command.find_subcommand(if every { "sync" } else { sub }) else {
            continue;
        };
        let id = flag.replace('-', "_");
        let arg = sub_command
            .get_arguments()
            .find(|a| a.get_id() == id.as_str())
            .unwrap_or_else(|| panic!("{sub} has no --{flag}"));
        let name = match *sub {
            _ if every => format!("`--{flag}` (every command)"),
            "sync" => format!("`--{flag}`"),
            _ => format!("`{sub} --{flag}`"),
        };
        let hidden = if arg.is_hide_set() { " (hidden)" } else { "" };
        table.push_str(&format!("| {name}{hidden} | {} |\n", accepts.accepted()));
    }
    table.push('\n');
    table
}

/// Compares a generated block of docs/operating.md with `table`, or rewrites it with
/// `UPDATE_DOCS=1`.
fn check_block(name: &str, table: &str, source: &str) {
    let path = root().join("docs/operating.md");
    let text = read(&path);
    let block = generated(&text, name).unwrap_or_else(|| panic!("no {name} block"));
    if text[block.clone()] == *table {
        return;
    }
    if std::env::var_os(UPDATE).is_some_and(|v| v == "1") {
        let mut updated = text.clone();
        updated.replace_range(block, table);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/operating.md's {name} block differs from {source}; regenerate it with \
         `{UPDATE}=1 cargo test --test it docs::`.\nExpected:\n{table}\nFound:\n{}",
        &text[block]
    );
}

#[test]
fn the_bounds_table_is_the_codes() {
    check_block("bounds", &bounds_table(), "src/bounds.rs");
}

/// The flags table names every flag of `sync` that `--help` shows (and the global ones), each
/// with the environment variable and the default the command line has.
#[test]
fn the_flags_table_is_the_command_lines() {
    let path = root().join("docs/operating.md");
    let text = read(&path);
    let block = generated(&text, "flags sync").expect("a flags block");
    let mut documented = BTreeMap::new();
    for row in text[block].lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let flag = cells[1].trim_matches('`').to_owned();
        documented.insert(flag, (cells[2].to_owned(), cells[3].to_owned()));
    }
    let command = linkrunner_sync::cli::command();
    let sync = command.find_subcommand("sync").unwrap();
    let mut shown = BTreeMap::new();
    for arg in sync.get_arguments().chain(command.get_arguments()) {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || long == "help" || long == "version" {
            continue;
        }
        let env = arg
            .get_env()
            .map_or(String::new(), |e| format!("`{}`", e.to_string_lossy()));
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        shown.insert(format!("--{long}"), (env, default.join(",")));
    }
    let names = |m: &BTreeMap<String, (String, String)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&documented),
        names(&shown),
        "flags in the docs and in --help"
    );
    for (flag, (env, default)) in &shown {
        let (doc_env, doc_default) = &documented[flag];
        assert_eq!(doc_env, env, "{flag}'s environment variable");
        if !default.is_empty() {
            assert_eq!(*doc_default, format!("`{default}`"), "{flag}'s default");
        }
    }
}
