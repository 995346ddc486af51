# The compute, each behind its own boolean: a Function App for the custom-handler package,
# a Container App running the daemon (min replicas 1), a scheduled Container Apps Job.
# All run as the user-assigned identity; AZURE_CLIENT_ID and the config's
# managed_identity_client_id name it.

locals {
  deploy_container_env = var.deploy_container_app || var.deploy_container_app_job

  # The Container Apps Job cron has five fields (minute first): drop the seconds field.
  job_cron = join(" ", slice(split(" ", var.sync_schedule), 1, 6))

  config_dir       = "/etc/trailvault"
  config_secret    = "trailvault-toml"
  container_config = "${local.config_dir}/${local.config_secret}"
  container_memory = "${var.container_cpu * 2}Gi"
  job_deadline     = "${var.job_timeout_seconds - 300}s"

  # Stopping: the daemon drains for shutdown_grace_seconds; its replica's grace adds 30 s of
  # headroom (run record, lease release, exit). A job replica's grace is fixed at 30 s, so
  # the job's sync drains for at most 20 s.
  termination_grace_seconds  = var.shutdown_grace_seconds + 30
  job_shutdown_grace_seconds = min(var.shutdown_grace_seconds, 20)
  registry_identity          = var.container_registry_server == "" ? [] : [var.container_registry_server]

  # Settings every runtime gets.
  common_settings = {
    AZURE_CLIENT_ID            = azurerm_user_assigned_identity.trailvault.client_id
    TRAILVAULT_SYNC_SCHEDULE   = var.sync_schedule
    TRAILVAULT_VERIFY_SCHEDULE = var.verify_schedule
  }
}

# --- Function App (custom handler) ------------------------------------------------------
# One of three hosting plans, by function_plan_sku (variables.tf refuses what cannot work):
# - FC1, Flex Consumption: azurerm_function_app_flex_consumption with runtime `custom`. It
#   takes no FUNCTIONS_WORKER_RUNTIME and no WEBSITE_RUN_FROM_PACKAGE: the package is
#   deployed into a blob container of the Functions account, read with the managed identity,
#   and the host's own storage (AzureWebJobsStorage) is reached with that identity too, so
#   the Functions account keeps shared keys off.
# - EP1-EP3 (Elastic Premium) and Dedicated SKUs (B*, S*, P*v3): azurerm_linux_function_app,
#   the package zip-deployed and run from package (WEBSITE_RUN_FROM_PACKAGE = "1").
# - Y1 (Linux Consumption, retiring 2028-09-30): azurerm_linux_function_app that runs the
#   package from a URL (WEBSITE_RUN_FROM_PACKAGE = function_package_url); Linux Consumption
#   accepts no other form.

locals {
  function_flex    = var.deploy_function_app && var.function_plan_sku == "FC1"
  function_classic = var.deploy_function_app && var.function_plan_sku != "FC1"
  # Linux Consumption and Elastic Premium keep the host's content share on Azure Files,
  # which takes only the account key; Flex Consumption and Dedicated need no content share.
  function_storage_key = local.function_classic && (var.function_plan_sku == "Y1" || startswith(var.function_plan_sku, "EP"))
  function_app_name    = "func-${var.name_prefix}-${var.storage_account_name}"

  function_settings = merge(local.common_settings, {
    # The rendered trailvault.toml (output trailvault_toml) ships in the package beside host.json.
    TRAILVAULT_CONFIG = "trailvault.toml"
  })
  # AzureWebJobsStorage through the user-assigned identity (no key). The identity settings
  # name the credential; the account name comes from storage_uses_managed_identity on the
  # Linux Function App and from the settings below on Flex Consumption, where the empty
  # AzureWebJobsStorage replaces the key-less connection string the provider would put there.
  function_identity_storage = {
    AzureWebJobsStorage__credential = "managedidentity"
    AzureWebJobsStorage__clientId   = azurerm_user_assigned_identity.trailvault.client_id
  }
  flex_host_storage = {
    AzureWebJobsStorage              = ""
    AzureWebJobsStorage__accountName = local.functions_storage_name
  }
  functions_storage_name = "${substr(var.storage_account_name, 0, min(length(var.storage_account_name), 20))}func"
}

# The Functions host's own storage (timer leases, keys, deployment package): a separate
# account, never the archive, so the archive keeps shared keys off and its roles stay on the
# two containers.
resource "azurerm_storage_account" "functions" {
  #checkov:skip=CKV2_AZURE_1:Customer-managed keys would add a Key Vault this module does not create; the account holds no evidence (Microsoft-managed keys, infrastructure encryption on).
  #checkov:skip=CKV2_AZURE_33:No private endpoint: the Functions host reaches its own account without a virtual network, which this module does not create; the account holds only the host's timer leases, keys and the package, never the archive.
  #checkov:skip=CKV2_AZURE_40:Linux Consumption (Y1) and Elastic Premium mount the host's content share over Azure Files, which takes only the account key; shared keys are off for Flex Consumption and Dedicated (local.function_storage_key).
  #checkov:skip=CKV2_AZURE_41:sas_policy below sets a one-day expiration period; checkov cannot evaluate shared_access_key_enabled (local.function_storage_key, by plan) and so does not see it.
  count                             = var.deploy_function_app ? 1 : 0
  name                              = local.functions_storage_name
  resource_group_name               = local.resource_group_name
  location                          = var.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "LRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = local.function_storage_key
  default_to_oauth_authentication   = true
  infrastructure_encryption_enabled = true

  # A SAS issued on this account (for Y1's package URL, say) should expire within a day;
  # the host itself uses the identity or, on Y1 and Elastic Premium, the account key.
  sas_policy {
    expiration_period = "1.00:00:00"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  tags = var.tags
}

# Flex Consumption reads the deployed package from this container with the identity.
resource "azurerm_storage_container" "function_package" {
  #checkov:skip=CKV2_AZURE_21:Blob logging for this container is the host's package reads; the archive account's blob reads, writes and deletes are logged (azurerm_monitor_diagnostic_setting.archive_blob).
  count                 = local.function_flex ? 1 : 0
  name                  = "function-package"
  storage_account_id    = azurerm_storage_account.functions[0].id
  container_access_type = "private"
}

# The host's own storage through the identity (AzureWebJobsStorage__credential =
# managedidentity): Microsoft's documented role for it is Storage Blob Data Owner on the
# account (the host creates its azure-webjobs-* containers and takes blob leases). This is
# the Functions account, never the archive.
resource "azurerm_role_assignment" "functions_host_storage" {
  count                = local.function_flex || (local.function_classic && !local.function_storage_key) ? 1 : 0
  scope                = azurerm_storage_account.functions[0].id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.trailvault.principal_id
  principal_type       = "ServicePrincipal"
  description          = "the Functions host's own storage (AzureWebJobsStorage) and the Flex deployment package"
}

resource "azurerm_service_plan" "functions" {
  count               = var.deploy_function_app ? 1 : 0
  name                = "asp-${var.name_prefix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = var.function_plan_sku
  tags                = var.tags
}

resource "azurerm_application_insights" "functions" {
  count               = var.deploy_function_app ? 1 : 0
  name                = "appi-${var.name_prefix}"
  resource_group_name = local.resource_group_name
  location            = var.location
  application_type    = "other"
  workspace_id        = local.workspace_id
  tags                = var.tags
}

resource "azurerm_function_app_flex_consumption" "trailvault" {
  # Public network access: the timer functions need no inbound access, but the status HTTP
  # function (function-key auth) and the deployer's one-deploy of the package do; this module
  # creates no virtual network or private endpoint.
  count               = local.function_flex ? 1 : 0
  name                = local.function_app_name
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.functions[0].id

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.functions[0].primary_blob_endpoint}${azurerm_storage_container.function_package[0].name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.trailvault.id

  # A custom handler: host.json's customHandler starts the trailvault executable.
  runtime_name           = "custom"
  runtime_version        = "1.0"
  maximum_instance_count = 40
  instance_memory_in_mb  = 2048

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  zip_deploy_file                                = var.function_package_path

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.trailvault.id]
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.functions[0].connection_string
    minimum_tls_version                    = "1.2"
  }

  app_settings = merge(local.function_settings, local.function_identity_storage, local.flex_host_storage)

  tags = var.tags

  depends_on = [azurerm_role_assignment.functions_host_storage]
}

resource "azurerm_linux_function_app" "trailvault" {
  #checkov:skip=CKV_AZURE_221:The timer functions need no inbound access, but the status HTTP function (function-key auth) and the deployer's zip deploy do; this module creates no virtual network or private endpoint.
  count               = local.function_classic ? 1 : 0
  name                = local.function_app_name
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.functions[0].id

  # Y1 and Elastic Premium: the account key (their Azure Files content share needs it).
  # Dedicated: the identity (app settings below), no key.
  storage_account_name          = azurerm_storage_account.functions[0].name
  storage_account_access_key    = local.function_storage_key ? azurerm_storage_account.functions[0].primary_access_key : null
  storage_uses_managed_identity = local.function_storage_key ? null : true

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  functions_extension_version                    = "~4"
  # Y1 runs the package from function_package_url; the others are zip-deployed from a path.
  zip_deploy_file = var.function_plan_sku == "Y1" ? null : var.function_package_path

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.trailvault.id]
  }

  key_vault_reference_identity_id = azurerm_user_assigned_identity.trailvault.id

  site_config {
    application_insights_connection_string = azurerm_application_insights.functions[0].connection_string
    minimum_tls_version                    = "1.2"
    ftps_state                             = "Disabled"
    # Dedicated plans unload an idle app, and its timers with it, unless Always On.
    always_on = var.function_plan_sku == "Y1" || startswith(var.function_plan_sku, "EP") ? null : true
    # Elastic Premium: keep one instance warm so the timer fires on time.
    elastic_instance_minimum = startswith(var.function_plan_sku, "EP") ? 1 : null

    application_stack {
      use_custom_runtime = true
    }
  }

  # use_custom_runtime makes FUNCTIONS_WORKER_RUNTIME "custom".
  app_settings = merge(
    local.function_settings,
    local.function_storage_key ? {} : local.function_identity_storage,
    { WEBSITE_RUN_FROM_PACKAGE = var.function_plan_sku == "Y1" ? var.function_package_url : "1" },
  )

  tags = var.tags
}

# --- Container Apps (the image from `make image`) ---------------------------------------

resource "azurerm_container_app_environment" "trailvault" {
  count                      = local.deploy_container_env ? 1 : 0
  name                       = "cae-${var.name_prefix}"
  resource_group_name        = local.resource_group_name
  location                   = var.location
  log_analytics_workspace_id = local.workspace_id
  # azurerm 5 no longer infers it from the workspace.
  logs_destination = "log-analytics"
  tags             = var.tags
}

# The daemon: scheduled sync and verify from [schedule], health endpoints, metrics.
resource "azurerm_container_app" "trailvault" {
  count                        = var.deploy_container_app ? 1 : 0
  name                         = "ca-${var.name_prefix}"
  resource_group_name          = local.resource_group_name
  container_app_environment_id = azurerm_container_app_environment.trailvault[0].id
  revision_mode                = "Single"

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.trailvault.id]
  }

  dynamic "registry" {
    for_each = local.registry_identity
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.trailvault.id
    }
  }

  secret {
    name  = local.config_secret
    value = local.trailvault_toml
  }

  template {
    min_replicas = 1
    max_replicas = 1
    # SIGTERM, then SIGKILL after this: the daemon's drain (--shutdown-grace) plus time to
    # write the run record, release the lease and exit.
    termination_grace_period_seconds = local.termination_grace_seconds

    container {
      name   = "trailvault"
      image  = var.container_image
      cpu    = var.container_cpu
      memory = local.container_memory
      args   = ["daemon", "--listen", "0.0.0.0:8080", "--shutdown-grace", "${var.shutdown_grace_seconds}s"]

      dynamic "env" {
        for_each = merge(local.common_settings, { TRAILVAULT_CONFIG = local.container_config })
        content {
          name  = env.key
          value = env.value
        }
      }

      liveness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/healthz"
      }

      readiness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/readyz"
      }

      volume_mounts {
        name = "config"
        path = local.config_dir
      }
    }

    volume {
      name         = "config"
      storage_type = "Secret"
    }
  }

  tags = var.tags

  depends_on = [azurerm_role_assignment.acr_pull]
}

# One sync per schedule tick; --deadline stops it cleanly before the replica timeout.
resource "azurerm_container_app_job" "sync" {
  count                        = var.deploy_container_app_job ? 1 : 0
  name                         = "caj-${var.name_prefix}-sync"
  resource_group_name          = local.resource_group_name
  location                     = var.location
  container_app_environment_id = azurerm_container_app_environment.trailvault[0].id
  replica_timeout_in_seconds   = var.job_timeout_seconds
  replica_retry_limit          = 0

  schedule_trigger_config {
    cron_expression          = local.job_cron
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.trailvault.id]
  }

  dynamic "registry" {
    for_each = local.registry_identity
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.trailvault.id
    }
  }

  secret {
    name  = local.config_secret
    value = local.trailvault_toml
  }

  template {
    container {
      name   = "trailvault"
      image  = var.container_image
      cpu    = var.container_cpu
      memory = local.container_memory
      # A job replica gets Container Apps' fixed 30 s between SIGTERM and SIGKILL (the job
      # template has no grace setting): the drain stays well inside it.
      args = ["sync", "--deadline", local.job_deadline, "--shutdown-grace", "${local.job_shutdown_grace_seconds}s"]

      dynamic "env" {
        for_each = merge(local.common_settings, { TRAILVAULT_CONFIG = local.container_config })
        content {
          name  = env.key
          value = env.value
        }
      }

      volume_mounts {
        name = "config"
        path = local.config_dir
      }
    }

    volume {
      name         = "config"
      storage_type = "Secret"
    }
  }

  tags = var.tags

  depends_on = [azurerm_role_assignment.acr_pull]
}
