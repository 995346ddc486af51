# Log Analytics: the TrailVault_CL table (every column of the contract's "Records"), the data
# collection endpoint and rule the Logs Ingestion API posts to, the workbook and the alerts.

locals {
  create_workspace = var.log_analytics_workspace_id == null
  workspace_id     = local.create_workspace ? azurerm_log_analytics_workspace.trailvault[0].id : var.log_analytics_workspace_id
  # The workspace GUID (customerId) for the query API: [log_analytics] workspace_id.
  workspace_guid = local.create_workspace ? azurerm_log_analytics_workspace.trailvault[0].workspace_id : data.azurerm_log_analytics_workspace.existing[0].workspace_id

  stream_name = "Custom-TrailVault_CL"

  # The configured sources as KQL string literals: a source that sends no record at all
  # still shows in the backup-gap alert.
  kql_sources = join(", ", [for s in var.sources : jsonencode(s.name)])

  # The contract's "Records" columns, once: the table and the DCR's stream declaration
  # must carry the same ones, so both are built from this list. TargetSeconds (the
  # configured max_gap, on SyncRun records) is the version-3 addition. The types are the
  # DCR stream declaration's (lowercase `datetime`); the table's API spells the same type
  # `dateTime` and compares case-sensitively, so the table maps it (table_column_type).
  record_columns = [
    { name = "TimeGenerated", type = "datetime" },
    { name = "RecordId", type = "string" },
    { name = "RecordType", type = "string" },
    { name = "RunId", type = "string" },
    { name = "Source", type = "string" },
    { name = "Account", type = "string" },
    { name = "Region", type = "string" },
    { name = "Status", type = "string" },
    { name = "FilesCopied", type = "long" },
    { name = "BytesCopied", type = "long" },
    { name = "FilesSkipped", type = "long" },
    { name = "FilesFailed", type = "long" },
    { name = "BackupGapSeconds", type = "long" },
    { name = "TargetSeconds", type = "long" },
    { name = "NewestFileTime", type = "datetime" },
    { name = "DurationSeconds", type = "real" },
    { name = "AwsHealth", type = "string" },
    { name = "Message", type = "string" },
    { name = "Details", type = "dynamic" },
  ]

  # The Tables API's column types (boolean, dateTime, dynamic, guid, int, long, real,
  # string: case-sensitive) where they differ from the DCR's (boolean, datetime, dynamic,
  # int, long, real, string).
  table_column_type = { datetime = "dateTime" }
}

resource "azurerm_log_analytics_workspace" "trailvault" {
  count               = local.create_workspace ? 1 : 0
  name                = "log-${var.name_prefix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_analytics_retention_days
  tags                = var.tags
}

data "azurerm_log_analytics_workspace" "existing" {
  count               = local.create_workspace ? 0 : 1
  name                = element(split("/", var.log_analytics_workspace_id), 8)
  resource_group_name = element(split("/", var.log_analytics_workspace_id), 4)
}

# The contract's table, its columns from local.record_columns (as the DCR's stream
# declaration below); tests/config_examples.rs checks both against the contract.
resource "azurerm_log_analytics_workspace_table_custom_log" "trailvault" {
  name              = "TrailVault_CL"
  workspace_id      = local.workspace_id
  display_name      = "trailvault records"
  description       = "SyncRun, Verify, Restore, Heartbeat, SamlAudit and Failover records sent by trailvault."
  plan              = "Analytics"
  retention_in_days = var.log_analytics_retention_days

  dynamic "column" {
    for_each = local.record_columns
    content {
      name = column.value.name
      type = lookup(local.table_column_type, column.value.type, column.value.type)
    }
  }
}

resource "azurerm_monitor_data_collection_endpoint" "trailvault" {
  name                          = "dce-${var.name_prefix}"
  resource_group_name           = local.resource_group_name
  location                      = var.location
  public_network_access_enabled = true
  description                   = "Logs Ingestion endpoint for trailvault ([log_analytics] ingestion_endpoint)"
  tags                          = var.tags
}

resource "azurerm_monitor_data_collection_rule" "trailvault" {
  name                        = "dcr-${var.name_prefix}"
  resource_group_name         = local.resource_group_name
  location                    = var.location
  data_collection_endpoint_id = azurerm_monitor_data_collection_endpoint.trailvault.id
  description                 = "trailvault records into TrailVault_CL"

  destinations {
    log_analytics {
      workspace_resource_id = local.workspace_id
      name                  = "trailvault-workspace"
    }
  }

  data_flow {
    streams       = ["Custom-TrailVault_CL"]
    destinations  = ["trailvault-workspace"]
    transform_kql = "source"
    output_stream = "Custom-TrailVault_CL"
  }

  stream_declaration {
    stream_name = "Custom-TrailVault_CL"

    dynamic "column" {
      for_each = local.record_columns
      content {
        name = column.value.name
        type = column.value.type
      }
    }
  }

  tags = var.tags

  # The output stream's table must exist before the rule points at it.
  depends_on = [azurerm_log_analytics_workspace_table_custom_log.trailvault]
}

# --- Workbook ---------------------------------------------------------------------------

resource "azurerm_application_insights_workbook" "trailvault" {
  # The resource name must be a GUID; uuidv5 keeps it stable across applies.
  name                = uuidv5("url", "https://trailvault/${var.resource_group_name}/${var.name_prefix}/workbook")
  resource_group_name = local.resource_group_name
  location            = var.location
  display_name        = "trailvault: CloudTrail archive in Azure"
  category            = "workbook"
  description         = "Backup gap, runs, integrity, restores, federated sign-in findings and AWS health from TrailVault_CL."
  source_id           = lower(local.workspace_id)
  # The workbook file as is, with this workspace as its fallback resource: the Workspace
  # parameter's default ("value::1") then picks it.
  data_json = jsonencode(merge(jsondecode(file("${path.module}/../../../workbooks/trailvault.workbook.json")), {
    fallbackResourceIds = [local.workspace_id]
  }))
  tags = var.tags
}

# --- Alerts -----------------------------------------------------------------------------

resource "azurerm_monitor_action_group" "trailvault" {
  name                = "ag-${var.name_prefix}"
  resource_group_name = local.resource_group_name
  location            = "global"
  short_name          = "trailvault"

  dynamic "email_receiver" {
    for_each = var.alert_email_addresses
    content {
      name                    = "email-${email_receiver.key}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }

  dynamic "webhook_receiver" {
    for_each = var.alert_webhook_url == "" ? [] : [var.alert_webhook_url]
    content {
      name                    = "webhook"
      service_uri             = webhook_receiver.value
      use_common_alert_schema = true
    }
  }

  tags = var.tags
}

# A source whose backup gap (now minus the start of its last complete run) is over the
# target its own records carry (TargetSeconds; the configured max_gap for records written
# before that column existed). It looks back two days, longer than the target, so a source
# whose runs keep failing, or whose last complete run fell out of the window, still fires;
# every configured source is listed, so one that sends nothing at all fires too.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "backup_gap" {
  name                 = "alert-${var.name_prefix}-backup-gap"
  resource_group_name  = local.resource_group_name
  location             = var.location
  display_name         = "trailvault: backup gap over target"
  description          = "A CloudTrail source's backup gap is over max_gap (${var.max_gap}). Run `trailvault status` and check the last SyncRun's Message."
  scopes               = [local.workspace_id]
  severity             = var.alert_severity
  evaluation_frequency = "PT15M"
  window_duration      = "PT15M"
  # The query's own ago() bounds it; the override lets it see beyond the evaluation window.
  query_time_range_override = "P2D"
  auto_mitigation_enabled   = true

  criteria {
    query                   = <<-KQL
      let Expected = datatable(Source: string) [${local.kql_sources}];
      let Runs = TrailVault_CL
      | where TimeGenerated > ago(2d)
      | where RecordType == "SyncRun"
      | summarize arg_max(TimeGenerated, *) by RecordId
      | extend Complete = tobool(Details.complete), Started = TimeGenerated - DurationSeconds * 1s
      | summarize LastCompleteStart = maxif(Started, Complete == true), arg_max(TimeGenerated, TargetSeconds) by Source;
      Expected
      | join kind=fullouter Runs on Source
      | extend Source = coalesce(Source, Source1)
      | extend Target = coalesce(TargetSeconds, ${local.max_gap_seconds})
      | extend GapSeconds = datetime_diff("second", now(), LastCompleteStart)
      | where isnull(LastCompleteStart) or GapSeconds > Target
      | project Source, GapSeconds, Target, LastCompleteStart
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0

    dimension {
      name     = "Source"
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  action {
    action_groups = [azurerm_monitor_action_group.trailvault.id]
    custom_properties = {
      runbook = "trailvault status --json; see deploy/terraform/README.md"
    }
  }

  tags = var.tags

  depends_on = [azurerm_log_analytics_workspace_table_custom_log.trailvault]
}

# No SyncRun record at all within max_gap: the schedule stopped, the compute is down, or
# records cannot reach Log Analytics (then they wait in the state container's spool/).
# Failed timer runs are not retried, so this is the missed-run (absent) rule.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "no_sync_run" {
  name                      = "alert-${var.name_prefix}-no-sync-run"
  resource_group_name       = local.resource_group_name
  location                  = var.location
  display_name              = "trailvault: no SyncRun within max_gap"
  description               = "No trailvault SyncRun record has arrived for ${var.max_gap}. Check the Function App or Container Apps Job runs and the spool."
  scopes                    = [local.workspace_id]
  severity                  = var.alert_severity
  evaluation_frequency      = "PT15M"
  window_duration           = "PT15M"
  query_time_range_override = "P2D"
  auto_mitigation_enabled   = true

  criteria {
    query                   = <<-KQL
      TrailVault_CL
      | where TimeGenerated > ago(${local.max_gap_seconds}s)
      | where RecordType == "SyncRun"
      | summarize Runs = dcount(RecordId)
    KQL
    time_aggregation_method = "Maximum"
    metric_measure_column   = "Runs"
    operator                = "LessThan"
    threshold               = 1

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  action {
    action_groups = [azurerm_monitor_action_group.trailvault.id]
    custom_properties = {
      runbook = "trailvault status --json; see deploy/terraform/README.md"
    }
  }

  tags = var.tags

  depends_on = [azurerm_log_analytics_workspace_table_custom_log.trailvault]
}

# --- Audit of the archive: every blob read, write and delete -----------------------------
# The archive's blob service sends its resource logs (StorageBlobLogs: who, from where,
# with which identity, what) to the workspace. Immutability makes a delete of an archived
# blob fail, but the attempt is evidence in itself: the alert below fires on it.
resource "azurerm_monitor_diagnostic_setting" "archive_blob" {
  name                       = "diag-${var.name_prefix}-archive-blob"
  target_resource_id         = "${azurerm_storage_account.archive.id}/blobServices/default"
  log_analytics_workspace_id = local.workspace_id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }
}

# Any delete attempted on the archive container (blob, version, container or its
# immutability policy), whether it succeeded or was refused. trailvault itself never deletes
# there, so every hit is somebody else.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "archive_delete_attempt" {
  name                      = "alert-${var.name_prefix}-archive-delete"
  resource_group_name       = local.resource_group_name
  location                  = var.location
  display_name              = "trailvault: delete attempted on the CloudTrail archive"
  description               = "A delete was attempted on the archive container ${var.archive_container_name}. trailvault never deletes there: find the caller in StorageBlobLogs (RequesterObjectId, CallerIpAddress)."
  scopes                    = [local.workspace_id]
  severity                  = var.alert_severity
  evaluation_frequency      = "PT15M"
  window_duration           = "PT15M"
  query_time_range_override = "PT1H"
  auto_mitigation_enabled   = false

  criteria {
    query                   = <<-KQL
      StorageBlobLogs
      | where AccountName == "${var.storage_account_name}"
      | where OperationName startswith "Delete" or OperationName in ("SetBlobExpiry", "ExtendImmutabilityPolicy", "LockImmutabilityPolicy")
      | where Uri has "/${var.archive_container_name}"
      | project TimeGenerated, OperationName, StatusCode, StatusText, AuthenticationType, RequesterObjectId, RequesterUpn, CallerIpAddress, Uri
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  action {
    action_groups = [azurerm_monitor_action_group.trailvault.id]
    custom_properties = {
      runbook = "StorageBlobLogs | where OperationName startswith \"Delete\"; see deploy/terraform/README.md"
    }
  }

  tags = var.tags

  depends_on = [azurerm_monitor_diagnostic_setting.archive_blob]
}
