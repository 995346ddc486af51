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
  features {}

  # Shared keys are off on the archive account by default: the provider must use Entra ID
  # for the storage data plane too.
  storage_use_azuread = true
  subscription_id     = var.subscription_id
}
