#!/usr/bin/env python3
"""Writes tests/fixtures/<provider>-<version>-schema.json: the argument and block names (and
which are required) of the resources and data sources deploy/terraform/<module> uses, as the
provider publishes them, read from the jsii assembly bundled in the PyPI packages
cdktf-cdktf-provider-azurerm 14.23.1 (hashicorp/azurerm 4.55.0, for `azurerm ~> 4.55`) and
cdktf-cdktf-provider-aws 19.65.1 (hashicorp/aws 5.99.1, for `aws ~> 5.81`), which are generated
from `terraform providers schema -json`. Plus the enum values the checks need that the schema
JSON does not carry (the provider validates them in Go): each with the provider source file
it comes from.

Run it again when a pin in versions.tf moves (scripts/check-terraform.py reads the fixtures
and fails on a resource type they do not list):

    pip download --no-deps -d /tmp/w cdktf-cdktf-provider-azurerm==14.23.1 cdktf-cdktf-provider-aws==19.65.1
    python3 tools/provider-schema/extract.py /tmp/w/cdktf_cdktf_provider_azurerm-14.23.1-py3-none-any.whl
    python3 tools/provider-schema/extract.py /tmp/w/cdktf_cdktf_provider_aws-19.65.1-py3-none-any.whl

The fixtures are data (names, flags, values), not provider code.
"""

import io
import json
import os
import re
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROVIDERS = {
    # PyPI package prefix: (provider, version, module folder, jsii namespace)
    "cdktf_cdktf_provider_azurerm-14.23.1": ("azurerm", "4.55.0", "azure", "@cdktf/provider-azurerm"),
    "cdktf_cdktf_provider_aws-19.65.1": ("aws", "5.99.1", "aws", "@cdktf/provider-aws"),
}

# Validated in the provider's Go code (StringInSlice, case-sensitive), not in the schema JSON.
ENUMS = {
    "aws_iam_policy_document.statement.effect": {
        "values": ["Allow", "Deny"],
        "source": "internal/service/iam/policy_document_data_source.go: effect StringInSlice",
    },
    "azurerm_log_analytics_workspace_table_custom_log.column.type": {
        "values": ["boolean", "dateTime", "dynamic", "guid", "int", "long", "real", "string"],
        "source": "internal/services/loganalytics/log_analytics_workspace_table.go: tables.PossibleValuesForColumnTypeEnum() (operationalinsights 2022-10-01), case-sensitive",
    },
    "azurerm_monitor_data_collection_rule.stream_declaration.column.type": {
        "values": ["boolean", "datetime", "dynamic", "int", "long", "real", "string"],
        "source": "internal/services/monitor/monitor_data_collection_rule_resource.go: datacollectionrules.PossibleValuesForKnownColumnDefinitionType(), case-sensitive",
    },
    "azurerm_function_app_flex_consumption.runtime_name": {
        "values": ["dotnet-isolated", "java", "node", "powershell", "python", "custom"],
        "source": "internal/services/appservice/function_app_flex_consumption_resource.go: runtime_name StringInSlice",
    },
    "azurerm_function_app_flex_consumption.storage_container_type": {
        "values": ["blobContainer"],
        "source": "internal/services/appservice/function_app_flex_consumption_resource.go: storage_container_type StringInSlice",
    },
    "azurerm_function_app_flex_consumption.storage_authentication_type": {
        "values": ["SystemAssignedIdentity", "StorageAccountConnectionString", "UserAssignedIdentity"],
        "source": "internal/services/appservice/function_app_flex_consumption_resource.go: storage_authentication_type StringInSlice",
    },
    "azurerm_container_app_environment.logs_destination": {
        "values": ["", "log-analytics", "azure-monitor"],
        "source": "internal/services/containerapps/container_app_environment_resource.go: logs_destination StringInSlice",
    },
    "azurerm_monitor_diagnostic_setting.enabled_log.category": {
        "values": ["StorageRead", "StorageWrite", "StorageDelete"],
        "source": "Azure Monitor resource log categories of Microsoft.Storage/storageAccounts/blobServices (the provider passes any string)",
    },
}


def used_types(provider, module):
    types = {"resource": set(), "data": set()}
    d = os.path.join(ROOT, "deploy", "terraform", module)
    for name in sorted(os.listdir(d)):
        if name.endswith(".tf"):
            text = open(os.path.join(d, name), encoding="utf-8").read()
            for kind, rtype in re.findall(rf'^(resource|data) "({provider}_[a-z0-9_]+)"', text, re.M):
                types[kind].add(rtype)
    return types


def load_jsii(wheel):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(z.read(name))) as t:
            return json.load(t.extractfile("package/.jsii"))


def anchor(p):
    docs = p.get("docs", {})
    m = re.search(r"#([a-z0-9_]+) [A-Za-z0-9]+#", (docs.get("summary") or "") + " " + (docs.get("remarks") or ""))
    return m.group(1) if m else None


def struct_of(t):
    """The struct fqn a property's type names (directly, in a list, or in a union), if any."""
    if isinstance(t, dict):
        if "fqn" in t and not t["fqn"].startswith("cdktf."):
            return t["fqn"]
        for v in t.values():
            if isinstance(v, (dict, list)):
                r = struct_of(v)
                if r:
                    return r
    if isinstance(t, list):
        for v in t:
            r = struct_of(v)
            if r:
                return r
    return None


def walk(types, fqn, depth=0):
    out = {"arguments": {}, "blocks": {}}
    for p in types[fqn].get("properties", []):
        name = anchor(p)
        if not name or name == "id":
            continue
        if name == "timeouts":
            continue
        s = struct_of(p["type"])
        if s and s in types and depth < 8:
            out["blocks"][name] = {"required": not p.get("optional", False), **walk(types, s, depth + 1)}
        else:
            out["arguments"][name] = {"required": not p.get("optional", False)}
    return out


def main():
    wheel = sys.argv[1]
    key = next(k for k in PROVIDERS if os.path.basename(wheel).startswith(k))
    provider, version, module, namespace = PROVIDERS[key]
    out_path = os.path.join(ROOT, "tests", "fixtures", f"{provider}-{version}-schema.json")
    jsii = load_jsii(wheel)
    types = jsii["types"]
    want = used_types(provider, module)
    schema = {
        "provider": f"registry.terraform.io/hashicorp/{provider} {version}",
        "from": f"PyPI {key.replace('_', '-').rsplit('-', 1)[0]} {key.rsplit('-', 1)[1]} (its jsii assembly, generated from the provider's published schema)",
        "resource": {},
        "data": {},
        "enums": {k: v for k, v in ENUMS.items() if k.startswith(provider + "_")},
    }
    for kind in ("resource", "data"):
        for rtype in sorted(want[kind]):
            base = "".join(w.capitalize() for w in rtype[len(provider) + 1:].split("_"))
            prefix = f"Data{provider.capitalize()}" if kind == "data" else ""
            fqn = next((k for k in types if k.startswith(namespace + ".") and k.endswith(f".{prefix}{base}Config") and types[k].get("kind") == "interface"), None)
            if fqn is None:
                raise SystemExit(f"{kind} {rtype}: no {prefix}{base}Config in the assembly")
            schema[kind][rtype] = walk(types, fqn)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(schema, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out_path}: {sum(len(schema[k]) for k in ('resource', 'data'))} types")


if __name__ == "__main__":
    main()
