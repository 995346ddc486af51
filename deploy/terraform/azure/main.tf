# trailvault on Azure: archive storage, identity, Log Analytics, alerts, workbook, compute.
# See ../README.md for the steps from zero to a first sync.

locals {
  resource_group_name = var.create_resource_group ? azurerm_resource_group.this[0].name : data.azurerm_resource_group.this[0].name

  # humantime max_gap ("8h") in seconds: the records' TargetSeconds and the alerts' threshold.
  max_gap_unit    = substr(var.max_gap, length(var.max_gap) - 1, 1)
  max_gap_seconds = tonumber(trimsuffix(var.max_gap, local.max_gap_unit)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, local.max_gap_unit)

  account_url = trimsuffix(azurerm_storage_account.archive.primary_blob_endpoint, "/")
}

resource "azurerm_resource_group" "this" {
  count    = var.create_resource_group ? 1 : 0
  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

data "azurerm_resource_group" "this" {
  count = var.create_resource_group ? 0 : 1
  name  = var.resource_group_name
}

# --- Storage: one account, two containers -----------------------------------------------
# Immutability is set per container, on the archive only. Account-level immutability (the
# account's immutability_policy block) would be inherited by the state container and break
# its watermark, lock and spool writes, so it is deliberately not used.

resource "azurerm_storage_account" "archive" {
  #checkov:skip=CKV_AZURE_59:trailvault runs on Functions or Container Apps without a virtual network, so it reaches the archive over the public endpoint; every request needs Entra ID (shared keys off, OAuth default), TLS 1.2 and a role scoped to one container, and anonymous access is off. Private endpoints need a VNet this module does not create.
  #checkov:skip=CKV2_AZURE_33:No private endpoint: see CKV_AZURE_59 (no virtual network in this module; access is Entra ID only).
  #checkov:skip=CKV_AZURE_33:The account serves no queues (blob containers only), so there is no queue traffic to log; blob reads, writes and deletes are logged (azurerm_monitor_diagnostic_setting.archive_blob).
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys with infrastructure (double) encryption. A customer-managed key would make the evidence readable only while one Key Vault key exists: a deleted or disabled key would make the write-once archive unreadable, which is the failure this archive exists to prevent.
  name                     = var.storage_account_name
  resource_group_name      = local.resource_group_name
  location                 = var.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.storage_replication_type
  access_tier              = "Hot"

  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = var.shared_access_key_enabled
  default_to_oauth_authentication   = true
  infrastructure_encryption_enabled = true

  blob_properties {
    delete_retention_policy {
      days = var.blob_soft_delete_days
    }
    container_delete_retention_policy {
      days = var.blob_soft_delete_days
    }
  }

  tags = var.tags
}

resource "azurerm_storage_container" "archive" {
  #checkov:skip=CKV2_AZURE_21:Blob reads, writes and deletes are logged to the workspace by azurerm_monitor_diagnostic_setting.archive_blob (resource logs, StorageBlobLogs); checkov recognises only the legacy azurerm_log_analytics_storage_insights, which needs the account key that is off here.
  name                  = var.archive_container_name
  storage_account_id    = azurerm_storage_account.archive.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "state" {
  #checkov:skip=CKV2_AZURE_21:Blob reads, writes and deletes are logged to the workspace by azurerm_monitor_diagnostic_setting.archive_blob (resource logs, StorageBlobLogs); checkov recognises only the legacy azurerm_log_analytics_storage_insights, which needs the account key that is off here.
  name                  = var.state_container_name
  storage_account_id    = azurerm_storage_account.archive.id
  container_access_type = "private"
}

# Container-level time-based retention (WORM) on the archive container only: new blobs can
# be created (trailvault never overwrites or deletes), existing ones cannot change.
resource "azurerm_storage_container_immutability_policy" "archive" {
  storage_container_resource_manager_id = azurerm_storage_container.archive.id
  immutability_period_in_days           = var.immutability_retention_days
  protected_append_writes_all_enabled   = false
  protected_append_writes_enabled       = false
  locked                                = var.immutability_policy_locked
}

# --- Identity and least-privilege role assignments --------------------------------------

resource "azurerm_user_assigned_identity" "trailvault" {
  name                = "id-${var.name_prefix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = var.tags
}

# Storage Blob Data Contributor on each container, never on the account.
resource "azurerm_role_assignment" "archive_blob_contributor" {
  scope                = azurerm_storage_container.archive.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "trailvault writes the CloudTrail archive"
}

resource "azurerm_role_assignment" "state_blob_contributor" {
  scope                = azurerm_storage_container.state.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "trailvault keeps watermarks, run records, its lock and spool"
}

# Logs Ingestion API: Monitoring Metrics Publisher on the DCR only.
resource "azurerm_role_assignment" "dcr_metrics_publisher" {
  scope                = azurerm_monitor_data_collection_rule.trailvault.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "trailvault sends TrailVault_CL records"
}

# `trailvault status --from log-analytics` reads the workspace.
resource "azurerm_role_assignment" "workspace_reader" {
  count                = var.grant_log_analytics_reader ? 1 : 0
  scope                = local.workspace_id
  role_definition_name = "Log Analytics Reader"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "trailvault status --from log-analytics"
}

resource "azurerm_role_assignment" "acr_pull" {
  count                = var.container_registry_id != null && (var.deploy_container_app || var.deploy_container_app_job) ? 1 : 0
  scope                = var.container_registry_id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "pull the trailvault image"
}
