# What a trailvault.toml needs, and the rendered file itself (output trailvault_toml).

locals {
  trailvault_toml = templatefile("${path.module}/trailvault.toml.tftpl", {
    sources            = var.sources
    account_url        = local.account_url
    archive_container  = azurerm_storage_container.archive.name
    state_container    = azurerm_storage_container.state.name
    client_id          = azurerm_user_assigned_identity.trailvault.client_id
    max_gap            = var.max_gap
    sync_schedule      = var.sync_schedule
    verify_schedule    = var.verify_schedule
    aws_role_arn       = var.aws_role_arn
    token_audience     = var.aws_token_audience
    ingestion_endpoint = azurerm_monitor_data_collection_endpoint.trailvault.logs_ingestion_endpoint
    dcr_immutable_id   = azurerm_monitor_data_collection_rule.trailvault.immutable_id
    stream             = local.stream_name
    workspace_id       = local.workspace_guid
  })
}

output "trailvault_toml" {
  description = "A complete trailvault.toml for this deployment ([[source]], [target], [sync], [schedule], [health], [aws], [log_analytics]). The Container App and Job mount it; add it to the Functions package beside host.json."
  value       = local.trailvault_toml
}

output "account_url" {
  description = "[target] account_url."
  value       = local.account_url
}

output "archive_container" {
  description = "[target] container (under the immutability policy)."
  value       = azurerm_storage_container.archive.name
}

output "state_container" {
  description = "[target] state_container (mutable)."
  value       = azurerm_storage_container.state.name
}

output "managed_identity_client_id" {
  description = "[target] managed_identity_client_id and AZURE_CLIENT_ID: the user-assigned identity's client ID."
  value       = azurerm_user_assigned_identity.trailvault.client_id
}

output "managed_identity_principal_id" {
  description = "The identity's principal (object) ID: the `sub` of its Entra tokens. Pass it to deploy/terraform/aws as azure_principal_id."
  value       = azurerm_user_assigned_identity.trailvault.principal_id
}

output "tenant_id" {
  description = "Entra tenant of the identity: deploy/terraform/aws's azure_tenant_id (issuer https://sts.windows.net/{tenant_id}/)."
  value       = azurerm_user_assigned_identity.trailvault.tenant_id
}

output "ingestion_endpoint" {
  description = "[log_analytics] ingestion_endpoint: the DCE's logs ingestion endpoint."
  value       = azurerm_monitor_data_collection_endpoint.trailvault.logs_ingestion_endpoint
}

output "dcr_immutable_id" {
  description = "[log_analytics] dcr_immutable_id."
  value       = azurerm_monitor_data_collection_rule.trailvault.immutable_id
}

output "stream" {
  description = "[log_analytics] stream."
  value       = local.stream_name
}

output "log_analytics_workspace_id" {
  description = "[log_analytics] workspace_id: the workspace GUID (customerId) the query API takes."
  value       = local.workspace_guid
}

output "log_analytics_workspace_resource_id" {
  description = "ARM ID of the workspace (the workbook's Workspace parameter)."
  value       = local.workspace_id
}

output "max_gap_seconds" {
  description = "The configured max_gap in seconds: what SyncRun records carry as TargetSeconds."
  value       = local.max_gap_seconds
}

output "function_app_name" {
  description = "Name of the Function App (null when deploy_function_app is false)."
  value       = var.deploy_function_app ? azurerm_linux_function_app.trailvault[0].name : null
}

output "container_app_job_name" {
  description = "Name of the scheduled sync job (null when deploy_container_app_job is false): `az containerapp job start` runs it now."
  value       = var.deploy_container_app_job ? azurerm_container_app_job.sync[0].name : null
}

output "container_app_name" {
  description = "Name of the daemon Container App (null when deploy_container_app is false)."
  value       = var.deploy_container_app ? azurerm_container_app.trailvault[0].name : null
}
