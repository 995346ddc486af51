# Archive age (issue 20): with events, the newest archived CloudTrail file is minutes old; an
# alert on it catches a stalled event path long before the backup gap does. Off by default
# (archive_age_alert_minutes = 0): without events the archive age follows the schedule.

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "archive_age" {
  count                = var.archive_age_alert_minutes > 0 ? 1 : 0
  name                 = "alert-${var.name_prefix}-archive-age"
  resource_group_name  = local.resource_group_name
  location             = var.location
  display_name         = "trailvault: archive age over ${var.archive_age_alert_minutes} minutes"
  description          = "The newest archived CloudTrail file of a source is older than ${var.archive_age_alert_minutes} minutes. Run `trailvault status` (archive_age_seconds) and `trailvault drain --json`."
  scopes               = [local.workspace_id]
  severity             = var.alert_severity
  evaluation_frequency = "PT5M"
  window_duration      = "PT5M"
  # The query's own ago() bounds it; the override lets it see beyond the evaluation window.
  query_time_range_override = "P2D"
  auto_mitigation_enabled   = true

  criteria {
    query                   = <<-KQL
      let Expected = datatable(Source: string) [${local.kql_sources}];
      let Newest = TrailVault_CL
      | where TimeGenerated > ago(2d)
      | where RecordType in ("SyncRun", "Events")
      | summarize arg_max(TimeGenerated, *) by RecordId
      | where isnotnull(NewestFileTime)
      | summarize NewestArchived = max(NewestFileTime) by Source;
      Expected
      | join kind=leftouter Newest on Source
      // A source with nothing archived in two days is as old as it gets.
      | extend AgeMinutes = coalesce(datetime_diff("minute", now(), NewestArchived), 1000000)
      | project Source, AgeMinutes, NewestArchived
    KQL
    metric_measure_column   = "AgeMinutes"
    time_aggregation_method = "Maximum"
    operator                = "GreaterThan"
    threshold               = var.archive_age_alert_minutes

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
      runbook = "trailvault status --json (archive_age_seconds); trailvault drain --json; see README, Events"
    }
  }

  tags = var.tags
}

variable "archive_age_alert_minutes" {
  description = "Alert when a source's newest archived CloudTrail file is older than this many minutes (0: no alert). With events, 30 is a reasonable bound."
  type        = number
  default     = 0
  validation {
    condition     = var.archive_age_alert_minutes >= 0 && var.archive_age_alert_minutes <= 100000
    error_message = "archive_age_alert_minutes must be between 0 (off) and 100000."
  }
}
