#!/usr/bin/env python3
"""Static check of deploy/terraform against the contract (Terraform cannot fetch providers here,
so `terraform validate` cannot run: this parses the HCL with python-hcl2 instead).

Usage: scripts/check-terraform.py [--terraform-dir DIR] [--workbook FILE] [--contract FILE]

Checks:
- every .tf file parses; every variable has a description; versions.tf pins its providers;
- TrailVault_CL (table) and the DCR stream declaration both carry exactly the contract's columns
  with their types (the contract's "Records" plus version 3's TargetSeconds long); the DCR sends
  stream Custom-TrailVault_CL to output stream Custom-TrailVault_CL;
- Storage Blob Data roles are scoped to the containers, never to the storage account; the DCR
  role is Monitoring Metrics Publisher on the DCR;
- immutability is a container-level policy on the archive container only (no account-level
  policy, none on the state container); TLS 1.2, no public blobs, shared keys off by default;
- the AWS OIDC provider's issuer is https://sts.windows.net/{tenant_id}/ with the token audience
  as client ID; the role trusts sts:AssumeRoleWithWebIdentity only with aud and sub conditions;
  its policy is least privilege (ListBucket with an s3:prefix condition, GetObject under the
  prefix, kms:Decrypt only when a key is set, cloudtrail:ListPublicKeys, no wildcard actions);
- the alerts (backup gap over target, no SyncRun within max_gap), the DCR transform and the
  workbook analyse clean with Microsoft's Kusto language service (scripts/check-kql.js);
- the workbook's backup-gap tile has its own time context and takes its target from the records;
- the compute sits behind boolean variables; the rendered trailvault.toml template has the
  contract's keys (rendered here with sample values and parsed as TOML);
- `terraform fmt -check -recursive` when terraform is on PATH (skipped, and said so, when not:
  it cannot be installed from the package registries).

Exit 0 when every check passes, 1 when one fails, 2 when python-hcl2 or node is missing.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import hcl2
    from hcl2 import SerializationOptions
except ImportError:  # pragma: no cover - reported to the caller
    print("python-hcl2 is missing: run `make deps` (it installs into .tools/venv)", file=sys.stderr)
    sys.exit(2)

# ../shared/contract.md, "Records", plus "Clarifications of version 3": TargetSeconds long.
CONTRACT_COLUMNS = [
    ("TimeGenerated", "datetime"), ("RecordId", "string"), ("RecordType", "string"),
    ("RunId", "string"), ("Source", "string"), ("Account", "string"), ("Region", "string"),
    ("Status", "string"), ("FilesCopied", "long"), ("BytesCopied", "long"),
    ("FilesSkipped", "long"), ("FilesFailed", "long"), ("BackupGapSeconds", "long"),
    ("TargetSeconds", "long"), ("NewestFileTime", "datetime"), ("DurationSeconds", "real"),
    ("AwsHealth", "string"), ("Message", "string"), ("Details", "dynamic"),
]
STREAM = "Custom-TrailVault_CL"
# Column types, case-sensitive, as the providers validate them (azurerm: the Tables API's
# ColumnTypeEnum for azurerm_log_analytics_workspace_table_custom_log, the DCR API's
# KnownColumnDefinitionType for a stream declaration): the table spells datetime `dateTime`.
TABLE_TYPES = {"boolean", "dateTime", "dynamic", "guid", "int", "long", "real", "string"}
DCR_TYPES = {"boolean", "datetime", "dynamic", "int", "long", "real", "string"}
TABLE_TYPE = {"datetime": "dateTime"}
OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, preserve_heredocs=False, strip_string_quotes=True
)


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
            print(f"ok: {what}")
        else:
            self.failed += 1
            print(f"FAIL: {what}")
        return ok


def load_module(path):
    """Every top-level block of every .tf file in a folder, merged: {kind: [...]}."""
    merged = {}
    for name in sorted(os.listdir(path)):
        if not name.endswith(".tf"):
            continue
        with open(os.path.join(path, name), encoding="utf-8") as f:
            doc = hcl2.load(f, serialization_options=OPTIONS)
        for kind, blocks in doc.items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def resources(module, rtype, kind="resource"):
    """{name: body} of every `kind "rtype" "name"` block."""
    out = {}
    for block in module.get(kind, []):
        for t, named in block.items():
            if t == rtype:
                out.update(named)
    return out


def one(value):
    """A nested block comes back as a list of bodies; most appear once."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value or {}


def locals_of(module):
    out = {}
    for block in module.get("locals", []):
        out.update(block)
    return out


def variables_of(module):
    out = {}
    for block in module.get("variable", []):
        out.update(block)
    return out


def hcl_unescape(s):
    return s.replace('\\"', '"').replace("\\\\", "\\")


def columns(body, local):
    """The (name, type) columns of a table or stream declaration: its `column` blocks, and
    `dynamic "column"` blocks over a local list whose content reads `column.value.name`
    and `column.value.type` (how monitor.tf builds both from one list)."""
    out = [(c.get("name"), c.get("type")) for c in body.get("column") or []]
    for dyn in body.get("dynamic") or []:
        spec = dyn.get("column")
        if not spec:
            continue
        source = spec.get("for_each", "")
        items = local.get(source[len("${local."):-1]) if source.startswith("${local.") else None
        content = one(spec.get("content"))
        ctype = content.get("type")
        mapping = None
        m = re.fullmatch(r"\$\{lookup\(local\.(\w+), column\.value\.type, column\.value\.type\)\}", str(ctype))
        if m and isinstance(local.get(m.group(1)), dict):
            mapping = local[m.group(1)]
        elif ctype != "${column.value.type}":
            mapping = False
        if not isinstance(items, list) or content.get("name") != "${column.value.name}" or mapping is False:
            out.append(("<unreadable dynamic column>", source))
            continue
        out.extend((i.get("name"), (mapping or {}).get(i.get("type"), i.get("type"))) for i in items)
    return out


def contract_columns(contract_path, c):
    """The contract's columns parsed from contract.md, when it is there, must match the list above."""
    if not contract_path or not os.path.exists(contract_path):
        print(f"note: {contract_path or 'contract.md'} not found; using the built-in column list")
        return CONTRACT_COLUMNS
    text = open(contract_path, encoding="utf-8").read()
    m = re.search(r"## Records \(Log Analytics table `TrailVault_CL`.*?\n(.*?)\n## ", text, re.S)
    parsed = re.findall(r"`([A-Za-z]+)` (datetime|string|long|real|dynamic|int|boolean)\b", m.group(1) if m else "")
    if re.search(r"`TargetSeconds` long", text):
        parsed.append(("TargetSeconds", "long"))
    c.check(
        sorted(parsed) == sorted(CONTRACT_COLUMNS),
        f"the contract's Records columns (+ TargetSeconds) are the ones checked here ({len(parsed)} parsed)",
    )
    return CONTRACT_COLUMNS


def render_template(text, values):
    """Enough of Terraform's template language for trailvault.toml.tftpl: ${x}, ${s.x},
    %{ for s in xs }, %{ if x != "" }, %{ endfor }, %{ endif }."""
    lines = text.splitlines()
    out = []

    def subst(line, scope):
        def repl(m):
            expr = m.group(1).strip()
            cur = scope
            for part in expr.split("."):
                cur = cur[part]
            return str(cur)

        return re.sub(r"\$\{([^}]*)\}", repl, line)

    def run(block, scope):
        i = 0
        while i < len(block):
            line = block[i]
            d = re.match(r"\s*%\{~?\s*(for|if)\s+(.*?)\s*~?\}\s*$", line)
            if d:
                depth, j = 1, i + 1
                while depth:
                    if re.match(r"\s*%\{~?\s*(for|if)\b", block[j]):
                        depth += 1
                    elif re.match(r"\s*%\{~?\s*end(for|if)\b", block[j]):
                        depth -= 1
                    j += 1
                body = block[i + 1 : j - 1]
                if d.group(1) == "for":
                    var, _, seq = d.group(2).partition(" in ")
                    for item in scope[seq.strip()]:
                        run(body, {**scope, var.strip(): item})
                else:
                    name, _, rhs = d.group(2).partition("!=")
                    if str(scope[name.strip()]) != json.loads(rhs.strip()):
                        run(body, scope)
                i = j
                continue
            out.append(subst(line, scope))
            i += 1

    run(lines, values)
    return "\n".join(out) + "\n"


def check_azure(azure, root, c, columns_wanted, kql):
    mod = load_module(azure)
    c.check(bool(mod.get("resource")), f"{azure}: every .tf file parses")
    local = locals_of(mod)
    var = variables_of(mod)

    # --- table and DCR -----------------------------------------------------------------
    tables = resources(mod, "azurerm_log_analytics_workspace_table_custom_log")
    table = next((t for t in tables.values() if t.get("name") == "TrailVault_CL"), None)
    c.check(table is not None, "table TrailVault_CL (azurerm_log_analytics_workspace_table_custom_log)")
    if table:
        got = columns(table, local)
        # The Tables API's column types are case-sensitive: dateTime, not datetime.
        table_wanted = [(n, TABLE_TYPE.get(t, t)) for n, t in columns_wanted]
        bad = sorted({t for _, t in got if t not in TABLE_TYPES})
        c.check(not bad, f"TrailVault_CL column types are the Tables API's ({', '.join(sorted(TABLE_TYPES))}; got {bad})")
        missing = [x for x in table_wanted if x not in got]
        extra = [x for x in got if x not in table_wanted]
        c.check(not missing and not extra, f"TrailVault_CL has every contract column with its type (missing {missing}, extra {extra})")
        c.check(table.get("plan", "Analytics") == "Analytics", "TrailVault_CL is an Analytics table")

    dcrs = resources(mod, "azurerm_monitor_data_collection_rule")
    c.check(len(dcrs) == 1, "one data collection rule")
    for name, dcr in dcrs.items():
        decls = dcr.get("stream_declaration") or []
        decl = next((d for d in decls if d.get("stream_name") == STREAM), None)
        c.check(decl is not None, f"DCR {name} declares stream {STREAM}")
        if decl:
            got = columns(decl, local)
            bad = sorted({t for _, t in got if t not in DCR_TYPES})
            c.check(not bad, f"DCR stream declaration column types are the DCR API's ({', '.join(sorted(DCR_TYPES))}; got {bad})")
            missing = [x for x in columns_wanted if x not in got]
            extra = [x for x in got if x not in columns_wanted]
            c.check(not missing and not extra, f"DCR stream declaration has every contract column with its type (missing {missing}, extra {extra})")
        flow = one(dcr.get("data_flow"))
        c.check(flow.get("output_stream") == STREAM, f"DCR output stream is {STREAM} (got {flow.get('output_stream')})")
        streams = [local.get(s[len("${local."):-1], s) if s.startswith("${local.") else s for s in flow.get("streams", [])]
        c.check(streams == [STREAM], f"DCR data flow reads stream {STREAM} (got {streams})")
        c.check(bool(flow.get("transform_kql")), "DCR data flow has a transformKql")
        kql.append({"name": f"dcr {name} transform_kql", "query": hcl_unescape(flow.get("transform_kql", "")), "input": "source"})
        dest = one(one(dcr.get("destinations")).get("log_analytics"))
        c.check(dest.get("name") in flow.get("destinations", []), "DCR data flow goes to its Log Analytics destination")
        c.check("data_collection_endpoint_id" in dcr, "DCR is tied to the data collection endpoint")
    c.check(bool(resources(mod, "azurerm_monitor_data_collection_endpoint")), "a data collection endpoint")

    # --- storage ------------------------------------------------------------------------
    accounts = resources(mod, "azurerm_storage_account")
    archive_account = accounts.get("archive", {})
    c.check(bool(archive_account), "storage account `archive`")
    c.check(archive_account.get("min_tls_version") == "TLS1_2", "archive account: min_tls_version TLS1_2")
    c.check(archive_account.get("allow_nested_items_to_be_public") is False, "archive account: no public blob access")
    sak = archive_account.get("shared_access_key_enabled")
    sak_default = var.get("shared_access_key_enabled", {}).get("default") if sak == "${var.shared_access_key_enabled}" else sak
    c.check(sak_default is False, "archive account: shared keys off by default")
    for n, acct in accounts.items():
        c.check("immutability_policy" not in acct, f"storage account {n}: no account-level immutability (it would lock the state container)")

    containers = resources(mod, "azurerm_storage_container")
    c.check({"archive", "state"} <= set(containers), "containers `archive` and `state`")
    c.check(containers.get("archive", {}).get("name") == "${var.archive_container_name}", "archive container is named by var.archive_container_name")
    c.check(containers.get("state", {}).get("name") == "${var.state_container_name}", "state container is named by var.state_container_name")
    for n, ct in containers.items():
        c.check(ct.get("container_access_type", "private") == "private", f"container {n} is private")
    policies = resources(mod, "azurerm_storage_container_immutability_policy")
    targets = [p.get("storage_container_resource_manager_id", "") for p in policies.values()]
    c.check(any("azurerm_storage_container.archive." in t for t in targets), "immutability policy on the archive container")
    c.check(not any("azurerm_storage_container.state." in t for t in targets), "no immutability policy on the state container")
    c.check(all("azurerm_storage_container.archive." in t for t in targets), "every immutability policy is the archive container's")
    for p in policies.values():
        c.check(p.get("immutability_period_in_days") == "${var.immutability_retention_days}", "retention days come from a variable")

    # --- roles --------------------------------------------------------------------------
    roles = resources(mod, "azurerm_role_assignment")
    for n, r in roles.items():
        scope = str(r.get("scope", ""))
        if scope.startswith("${azurerm_storage_account.functions["):
            # The Functions host's own account (AzureWebJobsStorage through the identity):
            # Microsoft documents Storage Blob Data Owner on the account for it.
            c.check(r.get("role_definition_name") == "Storage Blob Data Owner" and "local.function_" in str(r.get("count", "")),
                    f"role assignment {n}: Storage Blob Data Owner on the Functions host's own account only, and only with the Function App")
            continue
        c.check("azurerm_storage_account." not in scope, f"role assignment {n} is not scoped to a storage account")
        if str(r.get("role_definition_name", "")).startswith("Storage Blob Data"):
            c.check(scope.startswith("${azurerm_storage_container."), f"role assignment {n} ({r.get('role_definition_name')}) is scoped to a container ({scope})")
    blob_scopes = {r["scope"] for r in roles.values() if r.get("role_definition_name") == "Storage Blob Data Contributor"}
    c.check(
        blob_scopes == {"${azurerm_storage_container.archive.id}", "${azurerm_storage_container.state.id}"},
        f"Storage Blob Data Contributor on exactly the two containers ({sorted(blob_scopes)})",
    )
    mmp = [r for r in roles.values() if r.get("role_definition_name") == "Monitoring Metrics Publisher"]
    c.check(
        len(mmp) == 1 and str(mmp[0].get("scope", "")).startswith("${azurerm_monitor_data_collection_rule."),
        "Monitoring Metrics Publisher on the DCR",
    )
    uai = "${azurerm_user_assigned_identity.trailvault.principal_id}"
    c.check(all(r.get("principal_id") == uai for r in roles.values()), "every role goes to the user-assigned identity")

    # --- alerts -------------------------------------------------------------------------
    alerts = resources(mod, "azurerm_monitor_scheduled_query_rules_alert_v2")
    c.check(len(alerts) >= 2, f"two scheduled query alerts (got {len(alerts)})")
    queries = {}
    for n, a in alerts.items():
        crit = one(a.get("criteria"))
        q = hcl_unescape(crit.get("query", ""))
        queries[n] = q
        if "TrailVault_CL" not in q:
            continue  # the archive's StorageBlobLogs alert, checked below
        # What the queries may interpolate, and sample values for the analysis.
        samples = {"local.max_gap_seconds": "28800", "local.kql_sources": '"org-trail", "seoul"'}
        unknown = [m for m in re.findall(r"\$\{([^}]*)\}", q) if m.strip() not in samples]
        c.check(not unknown, f"alert {n}: its query interpolates only {sorted(samples)} ({unknown})")
        for k, v in samples.items():
            q = q.replace("${" + k + "}", v)
        kql.append({"name": f"alert {n}", "query": q})
        c.check(bool(one(a.get("action")).get("action_groups")), f"alert {n} notifies an action group")
        c.check(a.get("scopes") == ["${local.workspace_id}"], f"alert {n} is scoped to the workspace")
    deletes = [
        n for n, q in queries.items()
        if q.lstrip().startswith("StorageBlobLogs") and 'startswith "Delete"' in q and "${var.archive_container_name}" in q
    ]
    c.check(bool(deletes), "an alert fires on any delete attempted on the archive container (StorageBlobLogs)")
    diags = resources(mod, "azurerm_monitor_diagnostic_setting")
    blob_diag = [
        d for d in diags.values()
        if d.get("target_resource_id") == "${azurerm_storage_account.archive.id}/blobServices/default"
        and {one(e).get("category") if isinstance(e, list) else e.get("category") for e in d.get("enabled_log", [])} >= {"StorageRead", "StorageWrite", "StorageDelete"}
        and d.get("log_analytics_workspace_id") == "${local.workspace_id}"
    ]
    c.check(bool(blob_diag), "the archive's blob service sends StorageRead, StorageWrite and StorageDelete logs to the workspace")
    gap = [n for n, q in queries.items() if "TargetSeconds" in q and "max_gap_seconds" in q]
    c.check(bool(gap), "an alert compares the backup gap with TargetSeconds (the configured max_gap as fallback)")
    c.check(any("${local.kql_sources}" in queries[n] for n in gap), "the backup-gap alert lists every configured source")
    absent = [
        n for n, a in alerts.items()
        if "ago(${local.max_gap_seconds}s)" in queries[n] and '"SyncRun"' in queries[n]
        and one(a.get("criteria")).get("operator") == "LessThan"
    ]
    c.check(bool(absent), "an alert fires when no SyncRun arrived within max_gap")
    groups = resources(mod, "azurerm_monitor_action_group")
    ag = next(iter(groups.values()), {})
    dyn = {list(d.keys())[0] for d in ag.get("dynamic", [])} if isinstance(ag.get("dynamic"), list) else set()
    c.check({"email_receiver", "webhook_receiver"} <= dyn, "action group has email and webhook receivers")
    c.check("alert_webhook_url" in var and "alert_email_addresses" in var, "email and webhook are variables")

    # --- workbook -----------------------------------------------------------------------
    books = resources(mod, "azurerm_application_insights_workbook")
    c.check(len(books) == 1, "the workbook resource")
    for n, b in books.items():
        c.check(bool(b.get("display_name")), f"workbook {n} has display_name")
        c.check("workbooks/trailvault.workbook.json" in str(b.get("data_json", "")), f"workbook {n} is workbooks/trailvault.workbook.json")
        path = re.search(r'file\("\$\{path\.module\}/([^"]+)"\)', str(b.get("data_json", "")))
        c.check(bool(path) and os.path.exists(os.path.join(azure, path.group(1))), f"workbook {n}: data_json's file exists")

    # --- compute ------------------------------------------------------------------------
    def gated(rtype, flag):
        rs = resources(mod, rtype)
        return bool(rs) and all(flag in str(r.get("count", "")) for r in rs.values())

    fn_gate = ("var.deploy_function_app" in str(local.get("function_flex", "")) and "var.deploy_function_app" in str(local.get("function_classic", "")))
    c.check(fn_gate and gated("azurerm_linux_function_app", "local.function_classic") and gated("azurerm_function_app_flex_consumption", "local.function_flex"),
            "the Function Apps are behind var.deploy_function_app (Flex Consumption for FC1, the Linux Function App for the other plans)")
    c.check(gated("azurerm_container_app", "var.deploy_container_app"), "the Container App is behind var.deploy_container_app")
    c.check(gated("azurerm_container_app_job", "var.deploy_container_app_job"), "the Container Apps Job is behind var.deploy_container_app_job")
    for flag in ("deploy_function_app", "deploy_container_app", "deploy_container_app_job"):
        c.check(var.get(flag, {}).get("type") in ("bool", "${bool}"), f"var.{flag} is a bool")
    for n, app in resources(mod, "azurerm_container_app").items():
        c.check(one(app.get("template")).get("min_replicas") == 1, f"container app {n}: min_replicas 1")
    for rtype in ("azurerm_linux_function_app", "azurerm_function_app_flex_consumption", "azurerm_container_app", "azurerm_container_app_job"):
        for n, r in resources(mod, rtype).items():
            ident = one(r.get("identity"))
            c.check(ident.get("identity_ids") == ["${azurerm_user_assigned_identity.trailvault.id}"], f"{rtype}.{n} runs as the user-assigned identity")
            text = json.dumps(r).replace("local.function_settings", json.dumps(local.get("function_settings", {})))
            text = text.replace("local.common_settings", json.dumps(local.get("common_settings", {})))
            c.check("AZURE_CLIENT_ID" in text and "TRAILVAULT_" in text, f"{rtype}.{n} gets AZURE_CLIENT_ID and TRAILVAULT_* settings")
    for n, j in resources(mod, "azurerm_container_app_job").items():
        c.check(bool(one(j.get("schedule_trigger_config")).get("cron_expression")), f"container app job {n} runs on a schedule")
    fa = next(iter(resources(mod, "azurerm_linux_function_app").values()), {})
    stack = one(one(fa.get("site_config")).get("application_stack"))
    c.check(stack.get("use_custom_runtime") is True, "the Function App is a custom handler (use_custom_runtime)")
    flex = next(iter(resources(mod, "azurerm_function_app_flex_consumption").values()), {})
    c.check(flex.get("runtime_name") == "custom", f"Flex Consumption runs a custom handler (runtime_name custom, got {flex.get('runtime_name')})")
    flex_settings = json.dumps(flex.get("app_settings", "")) + json.dumps(local.get("function_settings", {})) + json.dumps(local.get("common_settings", {}))
    c.check("FUNCTIONS_WORKER_RUNTIME" not in flex_settings and "WEBSITE_RUN_FROM_PACKAGE" not in flex_settings,
            "Flex Consumption gets no FUNCTIONS_WORKER_RUNTIME and no WEBSITE_RUN_FROM_PACKAGE")
    c.check(flex.get("storage_authentication_type") == "UserAssignedIdentity", "Flex Consumption reads its package with the identity, not a key")
    wrfp = str(fa.get("app_settings", ""))
    c.check("var.function_package_url" in wrfp and '"Y1"' in wrfp, "Y1 runs the package from function_package_url (WEBSITE_RUN_FROM_PACKAGE as a URL)")
    sku_rule = str(one(var.get("function_plan_sku", {}).get("validation")).get("condition", ""))
    c.check("FC1" in sku_rule and "Y1" in sku_rule and "EP" in sku_rule, "function_plan_sku is validated (FC1, EP, Dedicated, Y1)")
    url_rule = str(one(var.get("function_package_url", {}).get("validation")).get("condition", ""))
    c.check("Y1" in url_rule and "https://" in url_rule, "function_package_url is required (https) exactly with Y1")

    # --- stopping: the replica grace leaves headroom over --shutdown-grace ------------------
    for n, app in resources(mod, "azurerm_container_app").items():
        tpl = one(app.get("template"))
        cont = one(tpl.get("container"))
        args = cont.get("args", [])
        c.check("--shutdown-grace" in args, f"container app {n}: the daemon gets --shutdown-grace")
        c.check(tpl.get("termination_grace_period_seconds") == "${local.termination_grace_seconds}"
                and "var.shutdown_grace_seconds + " in str(local.get("termination_grace_seconds", "")),
                f"container app {n}: termination_grace_period_seconds is --shutdown-grace plus headroom")
    for n, j in resources(mod, "azurerm_container_app_job").items():
        args = one(one(j.get("template")).get("container")).get("args", [])
        c.check("--shutdown-grace" in args and "min(var.shutdown_grace_seconds, 20)" in str(local.get("job_shutdown_grace_seconds", "")),
                f"container app job {n}: sync drains within 20 s of the job replica's fixed 30 s grace")
    envs = resources(mod, "azurerm_container_app_environment")
    c.check(all(e.get("logs_destination") == "log-analytics" for e in envs.values()) and envs, "the Container Apps environment sets logs_destination")
    img = var.get("container_image", {})
    c.check("localhost" not in str(img.get("default")) and "localhost/" in str(one(img.get("validation")).get("condition", "")),
            "container_image has no localhost default and refuses localhost/ images")
    np_rule = str(one(var.get("name_prefix", {}).get("validation")).get("condition", ""))
    c.check("(-[a-z0-9]+)*$" in np_rule, "name_prefix cannot end with a hyphen (Container App names)")

    # --- rendered trailvault.toml -------------------------------------------------------
    tpl = os.path.join(azure, "trailvault.toml.tftpl")
    c.check(os.path.exists(tpl), "trailvault.toml.tftpl")
    if os.path.exists(tpl):
        sample = {
            "sources": [{"name": "org-trail", "bucket": "org-trail-logs", "region": "us-east-1", "prefix": ""}],
            "account_url": "https://examplevault.blob.core.windows.net",
            "archive_container": "cloudtrail-archive", "state_container": "trailvault-state",
            "client_id": "00000000-0000-0000-0000-000000000001", "max_gap": "8h",
            "sync_schedule": "0 0 */8 * * *", "verify_schedule": "0 30 1 * * *",
            "aws_role_arn": "arn:aws:iam::111122223333:role/trailvault-reader",
            "token_audience": "api://AzureADTokenExchange",
            "ingestion_endpoint": "https://dce.westeurope-1.ingest.monitor.azure.com",
            "dcr_immutable_id": "dcr-0123456789abcdef0123456789abcdef", "stream": STREAM,
            "workspace_id": "00000000-0000-0000-0000-000000000002",
        }
        used = set(re.findall(r"templatefile\([^,]+,\s*\{(.*?)\}\)", json.dumps(local), re.S))
        try:
            doc = tomllib.loads(render_template(open(tpl, encoding="utf-8").read(), sample))
            aws = doc.get("aws", {})
            la = doc.get("log_analytics", {})
            c.check(doc.get("source", [{}])[0].get("bucket") == "org-trail-logs", "rendered toml: [[source]]")
            c.check(doc.get("target", {}).get("managed_identity_client_id") == sample["client_id"], "rendered toml: [target] with the identity's client ID")
            c.check(
                aws.get("auth") == "azure-federated" and aws.get("role_arn") == sample["aws_role_arn"]
                and aws.get("azure_credential") == "managed-identity" and aws.get("token_audience") == sample["token_audience"],
                "rendered toml: [aws] auth = azure-federated, role_arn, azure_credential, token_audience",
            )
            c.check(
                set(la) >= {"ingestion_endpoint", "dcr_immutable_id", "stream", "workspace_id"} and la.get("stream") == STREAM,
                "rendered toml: [log_analytics] ingestion_endpoint, dcr_immutable_id, stream, workspace_id",
            )
            c.check(doc.get("sync", {}).get("max_gap") == "8h", "rendered toml: [sync] max_gap")
            no_aws = tomllib.loads(render_template(open(tpl, encoding="utf-8").read(), {**sample, "aws_role_arn": ""}))
            c.check("aws" not in no_aws, "rendered toml without aws_role_arn has no [aws] section")
        except (tomllib.TOMLDecodeError, KeyError) as e:
            c.check(False, f"rendered toml parses ({e})")
        del used
        outputs = {}
        for block in mod.get("output", []):
            outputs.update(block)
        c.check("trailvault_toml" in outputs, "output trailvault_toml")
        c.check("templatefile(" in str(local.get("trailvault_toml", "")) and "trailvault.toml.tftpl" in str(local.get("trailvault_toml", "")), "trailvault_toml is rendered with templatefile")
    return mod


META = {"count", "for_each", "depends_on", "lifecycle", "provider"}


def check_provider_schema(mod, c, fixture, prefix="azurerm_"):
    """Every argument and block of every azurerm resource and data source is one the provider
    (at the pinned version) has, every required one is there, and literal values of the
    attributes the provider validates case-sensitively are among its values. The schema is
    tests/fixtures/azurerm-<version>-schema.json (tools/provider-schema/extract.py made it
    from the provider's published schema; no registry is needed here)."""
    schema = json.load(open(fixture, encoding="utf-8"))
    enums = schema.get("enums", {})
    problems = []

    def body_check(path, body, spec):
        if not isinstance(body, dict):
            problems.append(f"{path}: not a block")
            return
        present = set()
        for key, value in body.items():
            if key in META and path.count(".") == 1:
                continue
            if key == "dynamic":
                for dyn in value if isinstance(value, list) else [value]:
                    for name, d in dyn.items():
                        if name not in spec["blocks"]:
                            problems.append(f"{path}: dynamic block {name} is not a block of this type")
                            continue
                        present.add(name)
                        body_check(f"{path}.{name}", one(d.get("content")), spec["blocks"][name])
                continue
            if key in spec["arguments"]:
                present.add(key)
                e = enums.get(f"{path.split(' ', 1)[0]}.{key}") or enums.get(f"{enum_path(path)}.{key}")
                if e and isinstance(value, str) and "${" not in value and value not in e["values"]:
                    problems.append(f"{path}.{key} = {value!r} is not one of {e['values']} ({e['source']})")
                continue
            if key in spec["blocks"]:
                present.add(key)
                for b in value if isinstance(value, list) else [value]:
                    body_check(f"{path}.{key}", b, spec["blocks"][key])
                    if key in ("column",) or enum_path(f"{path}.{key}") in {k.rsplit(".", 1)[0] for k in enums}:
                        for ek, e in enums.items():
                            if ek.rsplit(".", 1)[0] == enum_path(f"{path}.{key}"):
                                v = b.get(ek.rsplit(".", 1)[1]) if isinstance(b, dict) else None
                                if isinstance(v, str) and "${" not in v and v not in e["values"]:
                                    problems.append(f"{path}.{key}.{ek.rsplit('.', 1)[1]} = {v!r} is not one of {e['values']} ({e['source']})")
                continue
            problems.append(f"{path}: {key} is neither an argument nor a block of this type")
        for name, a in spec["arguments"].items():
            if a.get("required") and name not in present:
                problems.append(f"{path}: the required argument {name} is missing")
        for name, b in spec["blocks"].items():
            if b.get("required") and name not in present:
                problems.append(f"{path}: the required block {name} is missing")

    def enum_path(path):
        # "azurerm_x.name.block.sub" -> "azurerm_x.block.sub"
        parts = path.split(".")
        return ".".join([parts[0]] + parts[2:])

    checked = 0
    for kind in ("resource", "data"):
        for block in mod.get(kind, []):
            for rtype, named in block.items():
                if not rtype.startswith(prefix):
                    continue
                for name, body in named.items():
                    spec = schema[kind].get(rtype)
                    if spec is None:
                        problems.append(f"{kind} {rtype}: not in {os.path.basename(fixture)} (rerun tools/provider-schema/extract.py)")
                        continue
                    checked += 1
                    body_check(f"{rtype}.{name}", body, spec)
    for p_ in problems:
        print(f"  schema: {p_}")
    c.check(not problems and checked > 0,
            f"every {prefix[:-1]} resource and data source ({checked}) uses only arguments and blocks {schema['provider']} has, with its required ones and valid enum values ({len(problems)} problems)")


def check_aws(aws_dir, c):
    mod = load_module(aws_dir)
    c.check(bool(mod.get("resource")), f"{aws_dir}: every .tf file parses")
    local = locals_of(mod)
    var = variables_of(mod)

    providers = resources(mod, "aws_iam_openid_connect_provider")
    prov = next(iter(providers.values()), {})
    issuers = local.get("issuer_urls", {})
    c.check(issuers.get("v1") == "https://sts.windows.net/${var.azure_tenant_id}/", f"issuer v1 is https://sts.windows.net/{{tenant_id}}/ (got {issuers.get('v1')})")
    c.check(issuers.get("v2") == "https://login.microsoftonline.com/${var.azure_tenant_id}/v2.0", f"issuer v2 is https://login.microsoftonline.com/{{tenant_id}}/v2.0 (got {issuers.get('v2')})")
    c.check(var.get("token_issuers", {}).get("default") == ["v1", "v2"], "both token issuers are trusted by default")
    c.check(prov.get("url") == "${each.value}" and "local.issuers" in str(prov.get("for_each")), "an OIDC provider per issuer")
    c.check(prov.get("client_id_list") == ["${var.token_audience}"], "OIDC provider client ID list is the token audience")
    c.check(var.get("token_audience", {}).get("default") == "api://AzureADTokenExchange", "token audience defaults to api://AzureADTokenExchange")

    docs = resources(mod, "aws_iam_policy_document", kind="data")
    roles = resources(mod, "aws_iam_role")
    reader = roles.get("reader", {})
    c.check(reader.get("assume_role_policy") == "${data.aws_iam_policy_document.trust.json}", "the sync role's trust policy is data.aws_iam_policy_document.trust")
    trust = docs.get("trust", {})
    dyn = [one(d.get("statement")) for d in trust.get("dynamic", []) if "statement" in d]
    c.check(not trust.get("statement") and len(dyn) == 1 and "local.issuers" in str(dyn[0].get("for_each")), "the trust policy has one statement per issuer")
    for d in dyn:
        s_ = one(d.get("content"))
        c.check(s_.get("actions") == ["sts:AssumeRoleWithWebIdentity"], "trust allows only sts:AssumeRoleWithWebIdentity")
        p = one(s_.get("principals"))
        c.check(p.get("type") == "Federated" and p.get("identifiers") == ["${local.oidc_provider_arns[statement.key]}"], "trust principal is that issuer's OIDC provider")
        prefix = '${trimprefix(statement.value, "https://")}'
        conds = {cond.get("variable", ""): cond for cond in s_.get("condition", [])}
        aud = conds.get(prefix + ":aud", {})
        sub = conds.get(prefix + ":sub", {})
        c.check(aud.get("test") == "StringEquals" and aud.get("values") == ["${var.token_audience}"], "trust condition: aud equals the token audience")
        c.check(sub.get("test") == "StringEquals" and sub.get("values") == ["${var.azure_principal_id}"], "trust condition: sub equals the managed identity's principal ID")
    policy = docs.get("reader", {})
    statements = list(policy.get("statement", []))
    dynamic = []
    for d in policy.get("dynamic", []) if isinstance(policy.get("dynamic"), list) else []:
        st = one(d.get("statement"))
        dynamic.append({"for_each": st.get("for_each"), "content": one(st.get("content"))})
    actions = {a for s in statements for a in s.get("actions", [])}
    c.check(actions == {"s3:ListBucket", "s3:GetObject", "cloudtrail:ListPublicKeys"}, f"reader policy: ListBucket, GetObject, ListPublicKeys (got {sorted(actions)})")
    for s in statements + [d.get("content", {}) for d in dynamic]:
        for a in s.get("actions", []):
            c.check("*" not in a, f"no wildcard action ({a})")
    lb = next((s for s in statements if "s3:ListBucket" in s.get("actions", [])), {})
    c.check(any(cnd.get("variable") == "s3:prefix" for cnd in lb.get("condition", [])), "ListBucket is limited by an s3:prefix condition")
    c.check(lb.get("resources") == ["arn:aws:s3:::${var.trail_bucket}"], "ListBucket on the trail bucket")
    go = next((s for s in statements if "s3:GetObject" in s.get("actions", [])), {})
    c.check(all(r.startswith("arn:aws:s3:::${var.trail_bucket}/${local.awslogs_root}") for r in go.get("resources", ["x"])), "GetObject only under the trail's prefix")
    kms = [d for d in dynamic if "kms:Decrypt" in d.get("content", {}).get("actions", [])]
    c.check(len(kms) == 1 and "var.trail_kms_key_arn" in str(kms[0].get("for_each")), "kms:Decrypt only when trail_kms_key_arn is set")
    c.check(kms and kms[0]["content"].get("resources") == ["${statement.value}"], "kms:Decrypt on that key only")
    via = [cnd for cnd in (kms[0]["content"].get("condition", []) if kms else []) if cnd.get("variable") == "kms:ViaService"]
    c.check(bool(via) and via[0].get("values") == ["s3.${local.trail_kms_region}.amazonaws.com"] and "var.trail_kms_key_arn" in str(local.get("trail_kms_region")),
            "kms:ViaService names S3 in the key's (so the bucket's) region, not the provider's")
    c.check("aws_region" not in json.dumps(mod.get("data", [])), "nothing is built from the provider's region")
    restore = roles.get("restore", {})
    c.check("var.create_restore_role" in str(restore.get("count", "")), "the restore role is optional (var.create_restore_role)")
    rdoc = docs.get("restore", {})
    ractions = {a for s in rdoc.get("statement", []) for a in s.get("actions", [])}
    c.check("s3:PutObject" in ractions, "the restore role can s3:PutObject")
    c.check("s3:PutObject" not in actions, "the sync role cannot write")
    return mod


def check_common(module_dir, mod, c):
    for name, v in variables_of(mod).items():
        c.check(bool(v.get("description")), f"{os.path.basename(module_dir)}: variable {name} has a description")
    tf = [b for b in mod.get("terraform", [])]
    req = [one(b.get("required_providers")) for b in tf]
    c.check(any(req), f"{os.path.basename(module_dir)}: versions.tf has required_providers")


def check_workbook(path, c):
    wb = json.load(open(path, encoding="utf-8"))
    items = wb.get("items", [])
    gap = next((i for i in items if i.get("name") == "backup-gap"), None)
    c.check(gap is not None, "workbook: a backup-gap item")
    if gap:
        content = gap["content"]
        c.check("timeContextFromParameter" not in content and content.get("timeContext", {}).get("durationMs", 0) >= 86400000 * 31, "workbook: backup-gap has its own 31-day time context, not the picker")
        q = content.get("query", "")
        c.check("TargetSeconds" in q and "{TimeRange" not in q, "workbook: backup-gap takes its target from TargetSeconds")
        c.check(not re.search(r"\b(8\.0|28800)\b", q), "workbook: no constant 8 h target in the backup-gap query")


def tf_console(tf, expr):
    """Evaluate an expression with `terraform console` in an empty folder: built-in functions
    (templatefile, jsonencode, ...) need no provider, so this works offline."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        run = subprocess.run(
            [tf, "console"], input=f"jsonencode({expr})\n", capture_output=True, text=True, cwd=d,
            env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        )
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip())
    return json.loads(json.loads(run.stdout.strip()))


def check_with_terraform_console(tf, terraform_dir, c):
    """The Terraform functions the modules rely on, evaluated by Terraform itself."""
    azure = os.path.join(terraform_dir, "azure")
    mod = load_module(azure)
    local = locals_of(mod)
    try:
        # max_gap ("8h") to seconds, exactly as locals.max_gap_seconds computes it.
        unit = local["max_gap_unit"][2:-1].replace("var.max_gap", '"{g}"')
        secs = local["max_gap_seconds"][2:-1].replace("local.max_gap_unit", "(" + unit + ")").replace("var.max_gap", '"{g}"')
        got = {g: tf_console(tf, secs.replace("{g}", g)) for g in ("8h", "90m", "1d", "45s")}
        c.check(got == {"8h": 28800, "90m": 5400, "1d": 86400, "45s": 45}, f"terraform console: max_gap_seconds ({got})")
        srcs = local["kql_sources"][2:-1].replace("var.sources", '[{name = "org-trail"}, {name = "seoul"}]')
        c.check(tf_console(tf, srcs) == '"org-trail", "seoul"', "terraform console: kql_sources renders KQL string literals")
        cron = local["job_cron"][2:-1].replace("var.sync_schedule", '"0 0 */8 * * *"')
        c.check(tf_console(tf, cron) == "0 */8 * * *", "terraform console: the job cron drops the seconds field")
        tpl = os.path.join(azure, "trailvault.toml.tftpl")
        values = {
            "sources": [{"name": "org-trail", "bucket": "org-trail-logs", "region": "us-east-1", "prefix": ""},
                        {"name": "seoul", "bucket": "seoul-logs", "region": "ap-northeast-2", "prefix": "ct"}],
            "account_url": "https://examplevault.blob.core.windows.net", "archive_container": "cloudtrail-archive",
            "state_container": "trailvault-state", "client_id": "cid", "max_gap": "8h",
            "sync_schedule": "0 0 */8 * * *", "verify_schedule": "0 30 1 * * *",
            "aws_role_arn": "arn:aws:iam::111122223333:role/trailvault-reader",
            "token_audience": "api://AzureADTokenExchange", "ingestion_endpoint": "https://dce.example",
            "dcr_immutable_id": "dcr-1", "stream": STREAM, "workspace_id": "w",
        }
        text = tf_console(tf, f"templatefile({json.dumps(tpl)}, jsondecode({json.dumps(json.dumps(values))}))")
        doc = tomllib.loads(text)
        mine = tomllib.loads(render_template(open(tpl, encoding="utf-8").read(), values))
        c.check(doc == mine and len(doc["source"]) == 2 and doc["aws"]["auth"] == "azure-federated",
                "terraform console: templatefile renders trailvault.toml.tftpl to the TOML checked above")
    except (RuntimeError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
        c.check(False, f"terraform console: {e}")


def tf_plan_variables(tf, module_dir, args):
    """`terraform plan` of a module's variables.tf alone (no provider, no resource: it runs
    offline) with -var ARGS: exit code and output. Variable validations run exactly as in a
    real plan."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        shutil.copy(os.path.join(module_dir, "variables.tf"), d)
        cmd = [tf, "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"]
        for k, v in args.items():
            cmd += ["-var", f"{k}={v}"]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=d,
                             env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"})
    return run.returncode, run.stdout + run.stderr


def check_variable_validations(tf, terraform_dir, c):
    """What cannot work is refused at plan time, by Terraform itself."""
    azure = os.path.join(terraform_dir, "azure")
    base = {"location": "westeurope", "storage_account_name": "examplevault",
            "sources": '[{name = "org-trail", bucket = "org-trail-logs", region = "us-east-1"}]',
            "container_image": "exampleacr.azurecr.io/trailvault:1.0.0"}
    cases = [
        ("the defaults (Flex Consumption, a registry image)", {}, None),
        ("Elastic Premium EP1", {"function_plan_sku": "EP1"}, None),
        ("Dedicated P1v3", {"function_plan_sku": "P1v3"}, None),
        ("Y1 with an https package URL", {"function_plan_sku": "Y1", "function_package_url": "https://examplevault.blob.core.windows.net/pkg/trailvault-functions.zip"}, None),
        ("Y1 without a package URL", {"function_plan_sku": "Y1"}, "function_package_url:"),
        ("Y1 with a zip path", {"function_plan_sku": "Y1", "function_package_url": "https://x.example/p.zip", "function_package_path": "dist/trailvault-functions.zip"}, "function_package_path:"),
        ("a package URL on Flex Consumption", {"function_package_url": "https://x.example/p.zip"}, "function_package_url:"),
        ("a Windows plan (WS1)", {"function_plan_sku": "WS1"}, "function_plan_sku:"),
        ("Y1 as lowercase y1", {"function_plan_sku": "y1"}, "function_plan_sku:"),
        ("name_prefix ending with a hyphen", {"name_prefix": "tv-"}, "name_prefix:"),
        ("name_prefix with a double hyphen", {"name_prefix": "tv--prod"}, "name_prefix:"),
        ("name_prefix tv-prod", {"name_prefix": "tv-prod"}, None),
        ("a localhost image", {"container_image": "localhost/trailvault:latest"}, "container_image:"),
        ("no image with the Container Apps Job", {"container_image": None}, "container_image:"),
        ("no image without containers", {"container_image": None, "deploy_container_app_job": "false"}, None),
        ("shutdown_grace_seconds 600 (its replica grace would pass 600)", {"shutdown_grace_seconds": "600"}, "shutdown_grace_seconds:"),
    ]
    for what, extra, refused in cases:
        args = {**base, **extra}
        args = {k: v for k, v in args.items() if v is not None}
        code, out = tf_plan_variables(tf, azure, args)
        if refused is None:
            c.check(code == 0, f"terraform plan (variables): {what} is accepted{'' if code == 0 else ': ' + out[-400:]}")
        else:
            c.check(code != 0 and refused in out, f"terraform plan (variables): {what} is refused with the {refused} message")
    aws = os.path.join(terraform_dir, "aws")
    abase = {"azure_tenant_id": "00000000-0000-0000-0000-000000000001", "azure_principal_id": "00000000-0000-0000-0000-000000000002",
             "trail_bucket": "org-trail-logs"}
    code, out = tf_plan_variables(tf, aws, abase)
    c.check(code == 0, f"terraform plan (aws variables): the defaults are accepted{'' if code == 0 else ': ' + out[-400:]}")
    code, out = tf_plan_variables(tf, aws, {**abase, "token_issuers": '["v3"]'})
    c.check(code != 0 and "token_issuers:" in out, "terraform plan (aws variables): an unknown token issuer is refused")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--terraform-dir", default=os.path.join(ROOT, "deploy", "terraform"))
    ap.add_argument("--workbook", default=os.path.join(ROOT, "workbooks", "trailvault.workbook.json"))
    ap.add_argument("--contract", default=os.path.join(os.path.dirname(ROOT), "shared", "contract.md"))
    ap.add_argument("--azurerm-schema", default=os.path.join(ROOT, "tests", "fixtures", "azurerm-4.55.0-schema.json"))
    ap.add_argument("--aws-schema", default=os.path.join(ROOT, "tests", "fixtures", "aws-5.99.1-schema.json"))
    args = ap.parse_args()
    c = Checker()
    if shutil.which("node") is None:
        print("node is missing: install Node.js 20 and run `make deps`", file=sys.stderr)
        return 2

    wanted = contract_columns(args.contract, c)
    kql = []
    azure = os.path.join(args.terraform_dir, "azure")
    aws = os.path.join(args.terraform_dir, "aws")
    try:
        amod = check_azure(azure, ROOT, c, wanted, kql)
        check_provider_schema(amod, c, args.azurerm_schema)
        check_common(azure, amod, c)
        wmod = check_aws(aws, c)
        check_provider_schema(wmod, c, args.aws_schema, "aws_")
        check_common(aws, wmod, c)
    except Exception as e:  # a parse error is a failed check, with the reason
        c.check(False, f"parse: {type(e).__name__}: {e}")
    check_workbook(args.workbook, c)

    kql_js = os.path.join(ROOT, "scripts", "check-kql.js")
    schema = json.loads(subprocess.run(["node", kql_js, "--print-schema"], capture_output=True, text=True).stdout or "[]")
    c.check([tuple(x) for x in schema] == wanted, "check-kql.js's schema is the contract's columns")
    run = subprocess.run(
        ["node", kql_js, args.workbook, "-"], input=json.dumps({"queries": kql}), capture_output=True, text=True
    )
    sys.stdout.write(run.stdout)
    sys.stdout.write(run.stderr)
    c.check(run.returncode == 0 and len(kql) >= 3, f"the alerts', the DCR transform's and the workbook's KQL analyse clean ({len(kql)} from Terraform)")

    tf = shutil.which("terraform")
    if tf:
        fmt = subprocess.run([tf, "fmt", "-check", "-recursive", args.terraform_dir], capture_output=True, text=True)
        c.check(fmt.returncode == 0, f"terraform fmt -check -recursive {args.terraform_dir} {fmt.stdout.strip()}")
        check_with_terraform_console(tf, args.terraform_dir, c)
        check_variable_validations(tf, args.terraform_dir, c)
    else:
        print("SKIPPED: terraform fmt -check, console and the variable validations (terraform is not on PATH; it is not in the package registries)")

    print(f"check-terraform: {c.passed + c.failed} checks, {c.failed} failures")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
