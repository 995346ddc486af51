# The compute, each behind its own boolean: a Function App for the custom-handler package,
# a Container App running the daemon (min replicas 1), a scheduled Container Apps Job.
# All run as the user-assigned identity; AZURE_CLIENT_ID and the config's
# managed_identity_client_id name it.

locals {
  deploy_container_env = var.deploy_container_app || var.deploy_container_app_job

  # The Container Apps Job cron has five fields (minute first): drop the seconds field.
  job_cron = join(" ", slice(split(" ", var.sync_schedule), 1, 6))

  config_dir        = "/etc/trailvault"
  config_secret     = "trailvault-toml"
  container_config  = "${local.config_dir}/${local.config_secret}"
  container_memory  = "${var.container_cpu * 2}Gi"
  job_deadline      = "${var.job_timeout_seconds - 300}s"
  registry_identity = var.container_registry_server == "" ? [] : [var.container_registry_server]

  # Settings every runtime gets.
  common_settings = {
    AZURE_CLIENT_ID            = azurerm_user_assigned_identity.trailvault.client_id
    TRAILVAULT_SYNC_SCHEDULE   = var.sync_schedule
    TRAILVAULT_VERIFY_SCHEDULE = var.verify_schedule
  }
}

# --- Function App (custom handler) ------------------------------------------------------

# The Functions host's own storage (timer leases, keys, deployment content): a separate
# account, never the archive, so the archive keeps shared keys off and its roles stay on the
# two containers.
resource "azurerm_storage_account" "functions" {
  count                           = var.deploy_function_app ? 1 : 0
  name                            = "${substr(var.storage_account_name, 0, min(length(var.storage_account_name), 20))}func"
  resource_group_name             = local.resource_group_name
  location                        = var.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  tags                            = var.tags
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

resource "azurerm_linux_function_app" "trailvault" {
  count               = var.deploy_function_app ? 1 : 0
  name                = "func-${var.name_prefix}-${var.storage_account_name}"
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.functions[0].id

  storage_account_name       = azurerm_storage_account.functions[0].name
  storage_account_access_key = azurerm_storage_account.functions[0].primary_access_key

  https_only                    = true
  public_network_access_enabled = true
  functions_extension_version   = "~4"
  zip_deploy_file               = var.function_package_path

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.trailvault.id]
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.functions[0].connection_string
    minimum_tls_version                    = "1.2"
    ftps_state                             = "Disabled"
    # Elastic Premium: keep one instance warm so the timer fires on time.
    elastic_instance_minimum = startswith(var.function_plan_sku, "EP") ? 1 : null

    application_stack {
      use_custom_runtime = true
    }
  }

  app_settings = merge(local.common_settings, {
    # use_custom_runtime makes FUNCTIONS_WORKER_RUNTIME "custom". The rendered trailvault.toml (output trailvault_toml) ships in the package beside host.json.
    TRAILVAULT_CONFIG        = "trailvault.toml"
    WEBSITE_RUN_FROM_PACKAGE = "1"
  })

  tags = var.tags
}

# --- Container Apps (the image from `make image`) ---------------------------------------

resource "azurerm_container_app_environment" "trailvault" {
  count                      = local.deploy_container_env ? 1 : 0
  name                       = "cae-${var.name_prefix}"
  resource_group_name        = local.resource_group_name
  location                   = var.location
  log_analytics_workspace_id = local.workspace_id
  tags                       = var.tags
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

    container {
      name   = "trailvault"
      image  = var.container_image
      cpu    = var.container_cpu
      memory = local.container_memory
      args   = ["daemon", "--listen", "0.0.0.0:8080"]

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
      args   = ["sync", "--deadline", local.job_deadline]

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
