//! deploy/terraform against the contract, the providers' published schemas (azurerm 4.55.0,
//! from tests/fixtures) and what cannot work (variable validations run by `terraform plan`
//! when terraform is on PATH): `scripts/check-terraform.py`, and that it catches mistakes.

use std::path::Path;

/// python-hcl2 (pinned in tools/emulators/requirements.txt, installed into .tools/venv by
/// `make deps`) and node with the Kusto language service run `scripts/check-terraform.py`;
/// under CI their absence fails. `terraform` itself is optional: the script runs
/// `terraform fmt -check` when it is on PATH and says SKIPPED when not (no registry has it).
fn terraform_checker() -> Option<std::process::Command> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join(".tools/venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        std::path::PathBuf::from("python3")
    };
    let have_hcl2 = std::process::Command::new(&python)
        .args(["-c", "import hcl2"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let have_kql = root
        .join("tools/emulators/node_modules/@kusto/language-service-next")
        .exists()
        && std::process::Command::new("node").arg("--version").output().is_ok();
    if !(have_hcl2 && have_kql) {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "python-hcl2, node or @kusto/language-service-next is missing: run `make deps`"
        );
        eprintln!("SKIPPED: python-hcl2, node or @kusto/language-service-next is missing: run `make deps`");
        return None;
    }
    let mut cmd = std::process::Command::new(python);
    cmd.arg(root.join("scripts/check-terraform.py"));
    Some(cmd)
}

#[test]
fn the_terraform_matches_the_contract_and_its_kql_analyses_clean() {
    let Some(mut check) = terraform_checker() else { return };
    let out = check.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failures"), "{stdout}");
    // The alerts' queries and the DCR transform went through the Kusto language service.
    assert!(
        stdout.contains("ok: the alerts', the DCR transform's and the workbook's KQL analyse clean"),
        "{stdout}"
    );
    if stdout.contains("SKIPPED: terraform fmt") {
        eprintln!("SKIPPED: terraform fmt -check (terraform is not on PATH)");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_terraform_check_catches_a_dropped_column_an_account_scope_a_missing_sub_condition_and_schema_errors() {
    let Some(mut check) = terraform_checker() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("deploy/terraform");
    copy_tree(&root.join("deploy/terraform"), &tf);
    copy_tree(&root.join("workbooks"), &dir.path().join("workbooks"));
    let edit = |path: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{} lacks {from}", path.display());
        // The last occurrence (monitor.tf lists its columns once, for the table and the DCR).
        let at = text.rfind(from).unwrap();
        std::fs::write(path, format!("{}{to}{}", &text[..at], &text[at + from.len()..])).unwrap();
    };
    edit(
        &tf.join("azure/monitor.tf"),
        "name = \"TargetSeconds\"",
        "name = \"TargetSecs\"",
    );
    edit(
        &tf.join("azure/main.tf"),
        "azurerm_storage_container.archive.id\n  role_definition_name",
        "azurerm_storage_account.archive.id\n  role_definition_name",
    );
    edit(&tf.join("aws/main.tf"), ":sub\"", ":oid\"");
    // The Tables API spells datetime `dateTime` (case-sensitive); a table given the DCR's
    // lowercase spelling fails at apply.
    edit(
        &tf.join("azure/monitor.tf"),
        "table_column_type = { datetime = \"dateTime\" }",
        "table_column_type = {}",
    );
    // An argument the provider does not have, and a runtime it does not know.
    edit(
        &tf.join("azure/compute.tf"),
        "replica_retry_limit          = 0",
        "replica_retry_limit          = 0\n  termination_grace_period_seconds = 60",
    );
    edit(
        &tf.join("azure/compute.tf"),
        "runtime_name           = \"custom\"",
        "runtime_name           = \"Custom\"",
    );
    let out = check
        .arg("--terraform-dir")
        .arg(&tf)
        .arg("--workbook")
        .arg(dir.path().join("workbooks/trailvault.workbook.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    for expected in [
        "FAIL: TrailVault_CL has every contract column",
        "FAIL: DCR stream declaration has every contract column",
        "FAIL: role assignment archive_blob_contributor is not scoped to a storage account",
        "FAIL: trust condition: sub equals",
        "FAIL: TrailVault_CL column types are the Tables API's",
        "schema: azurerm_container_app_job.sync: termination_grace_period_seconds is neither an argument nor a block",
        "schema: azurerm_function_app_flex_consumption.trailvault.runtime_name = 'Custom' is not one of",
        "FAIL: every azurerm resource and data source",
    ] {
        assert!(stdout.contains(expected), "{expected} not in:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL: table TrailVault_CL"), "{stdout}");
}
