//! Reading the project's HCL (Terraform and Packer files) for the infrastructure tests.

use std::path::{Path, PathBuf};

use hcl::{Block, Body};

/// Parses one file, or fails the test naming it.
pub fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    hcl::parse(&text)
        .unwrap_or_else(|err| panic!("{} does not parse as HCL: {err}", path.display()))
}

/// The files directly in `dir` (not in its subfolders) whose name ends with `suffix`,
/// sorted.
pub fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{suffix} file in {}", dir.display());
    files
}

/// Every top-level block of the files directly in `dir` ending with `suffix`: a
/// Terraform root module or a Packer template, as the tool itself reads them.
pub fn blocks_in(dir: &Path, suffix: &str) -> Vec<Block> {
    files_in(dir, suffix)
        .iter()
        .flat_map(|path| parse(path).into_blocks())
        .collect()
}

/// The blocks `kind "label0" "label1" ...` whose labels start with `labels`.
pub fn select<'a>(blocks: &'a [Block], kind: &str, labels: &[&str]) -> Vec<&'a Block> {
    blocks
        .iter()
        .filter(|block| {
            block.identifier() == kind
                && block.labels().len() >= labels.len()
                && block
                    .labels()
                    .iter()
                    .zip(labels)
                    .all(|(label, want)| label.as_str() == *want)
        })
        .collect()
}

/// The default value of `variable "name"` in the Terraform module at `dir`, as JSON: what
/// Terraform uses when nobody sets the variable (literal defaults only).
pub fn variable_default(dir: &Path, name: &str) -> serde_json::Value {
    variable_default_in(dir, ".tf", name)
}

/// The default value of `variable "name"` among the files of `dir` ending with `suffix`
/// (".tf" for Terraform, ".pkr.hcl" for Packer), as JSON.
pub fn variable_default_in(dir: &Path, suffix: &str, name: &str) -> serde_json::Value {
    let blocks = blocks_in(dir, suffix);
    let variable = select(&blocks, "variable", &[name]);
    let variable = variable
        .first()
        .unwrap_or_else(|| panic!("no variable \"{name}\" in {}", dir.display()));
    let default = variable
        .body()
        .attributes()
        .find(|attribute| attribute.key() == "default")
        .unwrap_or_else(|| panic!("variable \"{name}\" has no default"));
    serde_json::to_value(hcl::Value::from(default.expr().clone()))
        .expect("an HCL value converts to JSON")
}
