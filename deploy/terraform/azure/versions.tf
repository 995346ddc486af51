terraform {
  # 1.9 or later: variable validations refer to other variables (function_plan_sku).
  required_version = ">= 1.9"

  required_providers {
    # 4.55 or later: azurerm_log_analytics_workspace_table_custom_log (the TrailVault_CL table)
    # first shipped in 4.55.0, so no azapi resource is needed.
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.55"
    }
  }
}

provider "azurerm" {
  features {
    # No storage data-plane calls from the provider (azurerm issues 27752, 29984: with
    # storage_use_azuread it otherwise reads each account's queue and static-website
    # properties through the data plane, which needs Storage Queue/Blob Data roles the
    # deployer seldom has). Nothing here sets queue_properties or static_website, and the
    # containers and the immutability policy are managed through Azure Resource Manager.
    storage {
      data_plane_available = false
    }
  }

  # Shared keys are off on the archive account by default: should the provider reach the
  # storage data plane at all, it uses Entra ID, never a key.
  storage_use_azuread = true
  subscription_id     = var.subscription_id
}
