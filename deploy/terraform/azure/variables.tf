# Every variable has a description; `terraform.tfvars.example` shows a filled-in set.

# --- Where ------------------------------------------------------------------------------

variable "subscription_id" {
  description = "Azure subscription to deploy into. Null: taken from ARM_SUBSCRIPTION_ID or the Azure CLI login."
  type        = string
  default     = null
}

variable "location" {
  description = "Azure region for every resource (for example \"westeurope\")."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group that holds everything trailvault needs."
  type        = string
  default     = "rg-trailvault"
}

variable "create_resource_group" {
  description = "Create the resource group. False: it already exists and is only looked up."
  type        = bool
  default     = true
}

variable "name_prefix" {
  description = "Prefix of the resource names that need no global uniqueness (identity, DCE, DCR, alerts, compute)."
  type        = string
  default     = "trailvault"

  validation {
    # Container App names (ca-PREFIX, caj-PREFIX-sync) must not end with a hyphen nor hold
    # two in a row.
    condition     = can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", var.name_prefix)) && length(var.name_prefix) >= 2 && length(var.name_prefix) <= 21
    error_message = "name_prefix: 2 to 21 characters, lowercase letters and digits, single hyphens between them, starting with a letter and not ending with a hyphen."
  }
}

variable "tags" {
  description = "Tags put on every resource that takes them."
  type        = map(string)
  default     = {}
}

# --- Storage (archive and state) --------------------------------------------------------

variable "storage_account_name" {
  description = "Globally unique name of the storage account holding the archive and state containers (3-24 lowercase letters and digits)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name: 3 to 24 lowercase letters and digits."
  }
}

variable "storage_replication_type" {
  description = "Replication of the archive account: LRS, ZRS, GRS, RAGRS, GZRS or RAGZRS. A geo-redundant type keeps a copy in the paired region."
  type        = string
  default     = "GRS"
}

variable "shared_access_key_enabled" {
  description = "Allow shared-key (account key and SAS) requests on the archive account. Off by default: trailvault authenticates with the managed identity."
  type        = bool
  default     = false
}

variable "archive_container_name" {
  description = "Archive container ([target] container): write-once blobs under a time-based immutability policy."
  type        = string
  default     = "cloudtrail-archive"
}

variable "state_container_name" {
  description = "State container ([target] state_container): watermarks, run records, lock, spool. Mutable, so it has no immutability policy."
  type        = string
  default     = "trailvault-state"
}

variable "immutability_retention_days" {
  description = "Days each archived blob stays non-erasable and non-modifiable (container-level time-based retention on the archive container only)."
  type        = number
  default     = 365

  validation {
    condition     = var.immutability_retention_days >= 1 && var.immutability_retention_days <= 146000
    error_message = "immutability_retention_days: 1 to 146000."
  }
}

variable "immutability_policy_locked" {
  description = "Lock the archive's immutability policy (irreversible: the retention can then only grow, and neither the container nor the account can be deleted until every blob expires). Leave false until the deployment is final."
  type        = bool
  default     = false
}

variable "blob_soft_delete_days" {
  description = "Soft-delete retention for blobs and containers (protects the state container from accidental deletes)."
  type        = number
  default     = 14
}

# --- trailvault configuration -----------------------------------------------------------

variable "sources" {
  description = "CloudTrail sources ([[source]] entries): name ([a-z0-9-]+), bucket, region, and the trail's key prefix (\"\" when none)."
  type = list(object({
    name   = string
    bucket = string
    region = string
    prefix = optional(string, "")
  }))

  validation {
    condition     = length(var.sources) > 0 && alltrue([for s in var.sources : can(regex("^[a-z0-9-]+$", s.name))])
    error_message = "sources: at least one, each name matching [a-z0-9-]+."
  }
}

variable "max_gap" {
  description = "Backup-gap target ([sync] max_gap, humantime: \"8h\", \"90m\", \"1d\"). Also the alerts' threshold and the TargetSeconds the records carry."
  type        = string
  default     = "8h"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.max_gap))
    error_message = "max_gap: a whole number followed by s, m, h or d (for example \"8h\")."
  }
}

variable "sync_schedule" {
  description = "Sync schedule, seconds-first six-field cron in UTC ([schedule] cron, the Functions timer and, minus the seconds field, the Container Apps Job)."
  type        = string
  default     = "0 0 */8 * * *"

  validation {
    condition     = length(split(" ", var.sync_schedule)) == 6
    error_message = "sync_schedule: six space-separated fields, seconds first."
  }
}

variable "verify_schedule" {
  description = "Daily verify schedule, seconds-first six-field cron in UTC ([schedule] verify_cron and the Functions verify timer)."
  type        = string
  default     = "0 30 1 * * *"

  validation {
    condition     = length(split(" ", var.verify_schedule)) == 6
    error_message = "verify_schedule: six space-separated fields, seconds first."
  }
}

variable "aws_role_arn" {
  description = "ARN of the read-only role that deploy/terraform/aws creates ([aws] role_arn). It is deterministic (arn:aws:iam::ACCOUNT:role/NAME), so it can be set before the AWS side exists. Empty: the rendered config has no [aws] section and the SDK's default chain is used."
  type        = string
  default     = ""
}

variable "aws_token_audience" {
  description = "Audience of the Entra token exchanged with STS ([aws] token_audience); must equal the AWS OIDC provider's client ID."
  type        = string
  default     = "api://AzureADTokenExchange"
}

# --- Log Analytics, alerts, workbook ----------------------------------------------------

variable "log_analytics_workspace_id" {
  description = "Resource ID of an existing Log Analytics workspace to use. Null: a new workspace is created."
  type        = string
  default     = null
}

variable "log_analytics_retention_days" {
  description = "Retention of a newly created workspace and of the TrailVault_CL table, in days (31 are included in the ingestion price for Analytics tables)."
  type        = number
  default     = 90
}

variable "alert_email_addresses" {
  description = "Email addresses the action group notifies when a backup-gap alert fires."
  type        = list(string)
  default     = []
}

variable "alert_webhook_url" {
  description = "Teams (Workflows) or generic webhook URL the action group calls, with the common alert schema. Empty: none."
  type        = string
  default     = ""
  sensitive   = true
}

variable "alert_severity" {
  description = "Severity (0 critical to 4 verbose) of the backup-gap alerts."
  type        = number
  default     = 1
}

variable "grant_log_analytics_reader" {
  description = "Give the identity Log Analytics Reader on the workspace, for `trailvault status --from log-analytics`."
  type        = bool
  default     = true
}

# --- Compute ----------------------------------------------------------------------------

variable "deploy_function_app" {
  description = "Create the Linux Function App that runs the custom-handler package (make functions-package)."
  type        = bool
  default     = false
}

variable "function_plan_sku" {
  description = "Hosting plan of the Function App: FC1 (Flex Consumption, the default), EP1-EP3 (Elastic Premium), a Dedicated App Service SKU (B1-B3, S1-S3, P0v3-P3v3, P1mv3-P5mv3), or Y1 (Linux Consumption, retiring 2028-09-30: only with function_package_url). host.json's functionTimeout (10 min) fits every one of them."
  type        = string
  default     = "FC1"

  validation {
    condition     = can(regex("^(FC1|Y1|EP[1-3]|B[1-3]|S[1-3]|P[0-3]v3|P[1-5]mv3)$", var.function_plan_sku))
    error_message = "function_plan_sku: FC1 (Flex Consumption), EP1-EP3 (Elastic Premium), B1-B3, S1-S3, P0v3-P3v3, P1mv3-P5mv3 (Dedicated) or Y1 (Linux Consumption). Windows plans cannot run the Linux handler."
  }
}

variable "function_package_path" {
  description = "Local path of dist/trailvault-functions.zip (made with FUNCTIONS_CONFIG=<the rendered trailvault.toml>) to deploy with Terraform: one-deploy on Flex Consumption, zip deploy on Elastic Premium and Dedicated. Null: deploy it yourself (az functionapp deployment source config-zip). Not used on Y1."
  type        = string
  default     = null

  validation {
    condition     = var.function_package_path == null || var.function_plan_sku != "Y1"
    error_message = "function_package_path: Linux Consumption (Y1) cannot run a zip-deployed package; upload it to a blob and set function_package_url instead."
  }
}

variable "function_package_url" {
  description = "Y1 (Linux Consumption) only: an https URL the platform can read the package from (for example a blob URL with a read-only SAS, or a blob the app's identity can read), set as WEBSITE_RUN_FROM_PACKAGE."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.function_plan_sku != "Y1" ? var.function_package_url == null : (var.function_package_url != null && startswith(coalesce(var.function_package_url, "-"), "https://"))
    error_message = "function_package_url: required (an https:// URL) with function_plan_sku = \"Y1\", which accepts WEBSITE_RUN_FROM_PACKAGE only as a URL; leave it null on the other plans."
  }
}

variable "deploy_container_app" {
  description = "Create a Container App running `trailvault daemon` (min and max replicas 1: scheduled sync and verify, /healthz, /readyz, /metrics)."
  type        = bool
  default     = false
}

variable "deploy_container_app_job" {
  description = "Create a scheduled Container Apps Job running `trailvault sync --deadline` on sync_schedule."
  type        = bool
  default     = true
}

variable "container_image" {
  description = "Image built by `make image` and pushed to a registry Azure can pull from (for example myacr.azurecr.io/trailvault:1.0.0). Required with deploy_container_app or deploy_container_app_job: there is no default."
  type        = string
  default     = null

  validation {
    condition     = !(var.deploy_container_app || var.deploy_container_app_job) || (var.container_image != null && !startswith(coalesce(var.container_image, "localhost/"), "localhost/") && length(regexall("^[a-z0-9.-]+\\.[a-z0-9.-]+(:[0-9]+)?/", coalesce(var.container_image, "-"))) == 1)
    error_message = "container_image: a registry-qualified reference (REGISTRY/NAME:TAG or @sha256:...), not localhost/...: Container Apps pull it from that registry."
  }
}

variable "container_registry_server" {
  description = "Registry server the image is pulled from with the managed identity (for example myacr.azurecr.io). Empty: a public image."
  type        = string
  default     = ""
}

variable "container_registry_id" {
  description = "Resource ID of the Azure Container Registry, to give the identity AcrPull on it. Null: grant it yourself."
  type        = string
  default     = null
}

variable "job_timeout_seconds" {
  description = "Longest a Container Apps Job run may take; the sync's --deadline is five minutes less, so a long backfill stops cleanly (Partial) and resumes next time."
  type        = number
  default     = 14400

  validation {
    condition     = var.job_timeout_seconds >= 900
    error_message = "job_timeout_seconds: at least 900."
  }
}

variable "shutdown_grace_seconds" {
  description = "How long the daemon lets a running sync finish after SIGTERM (--shutdown-grace). The Container App's termination grace is this plus 30 s; a job replica's grace is fixed at 30 s, so the job's sync uses at most 20 s."
  type        = number
  default     = 25

  validation {
    condition     = var.shutdown_grace_seconds >= 5 && var.shutdown_grace_seconds <= 570
    error_message = "shutdown_grace_seconds: 5 to 570 (the replica grace, this plus 30 s, is at most 600)."
  }
}

variable "container_cpu" {
  description = "vCPU of the daemon and job containers (0.25 steps; memory is twice this in GiB)."
  type        = number
  default     = 0.5
}
