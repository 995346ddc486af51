# Every variable has a description; `terraform.tfvars.example` shows a filled-in set.

variable "region" {
  description = "AWS region for the provider (IAM is global; this only picks the API endpoint)."
  type        = string
  default     = "us-east-1"
}

variable "azure_tenant_id" {
  description = "Entra tenant ID of trailvault's managed identity (deploy/terraform/azure output tenant_id). The OIDC providers' issuers are https://sts.windows.net/{tenant_id}/ (v1.0 tokens) and https://login.microsoftonline.com/{tenant_id}/v2.0 (v2.0 tokens)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F-]{36}$", var.azure_tenant_id))
    error_message = "azure_tenant_id: a GUID."
  }
}

variable "azure_principal_id" {
  description = "Principal (object) ID of trailvault's user-assigned managed identity (deploy/terraform/azure output managed_identity_principal_id): the `sub` claim of its tokens, the only subject the role trusts."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F-]{36}$", var.azure_principal_id))
    error_message = "azure_principal_id: a GUID."
  }
}

variable "token_audience" {
  description = "Audience of the Entra token ([aws] token_audience): the OIDC provider's client ID and the `aud` the trust policy requires."
  type        = string
  default     = "api://AzureADTokenExchange"
}

variable "token_issuers" {
  description = "Entra token versions the role trusts: v1 (issuer https://sts.windows.net/{tenant_id}/) and v2 (https://login.microsoftonline.com/{tenant_id}/v2.0). A managed identity's token for api://AzureADTokenExchange is v2; for an app registration's App ID URI it is v1 unless that app accepts v2. Both by default."
  type        = list(string)
  default     = ["v1", "v2"]

  validation {
    condition     = length(var.token_issuers) > 0 && alltrue([for v in var.token_issuers : contains(["v1", "v2"], v)])
    error_message = "token_issuers: one or both of \"v1\" and \"v2\"."
  }
}

variable "oidc_thumbprints" {
  description = "Server certificate thumbprints for the OIDC provider. Empty (the default): none, AWS checks the issuer's certificate against its trusted CAs."
  type        = list(string)
  default     = []
}

variable "create_oidc_provider" {
  description = "Create the IAM OIDC providers for the tenant (one per token_issuers entry). False: they already exist in the account and are looked up by issuer URL."
  type        = bool
  default     = true
}

variable "role_name" {
  description = "Name of the read-only sync role ([aws] role_arn is arn:aws:iam::ACCOUNT:role/NAME)."
  type        = string
  default     = "trailvault-reader"
}

variable "max_session_duration" {
  description = "Longest session the sync role grants, in seconds (trailvault refreshes credentials before they expire)."
  type        = number
  default     = 3600
}

variable "trail_bucket" {
  description = "S3 bucket the trail delivers to ([[source]] bucket)."
  type        = string
}

variable "trail_prefix" {
  description = "The trail's S3 key prefix ([[source]] prefix), without a trailing slash; \"\" when the trail has none."
  type        = string
  default     = ""

  validation {
    condition     = !endswith(var.trail_prefix, "/") && !startswith(var.trail_prefix, "/")
    error_message = "trail_prefix: no leading or trailing slash."
  }
}

variable "trail_kms_key_arn" {
  description = "ARN of the KMS key the trail encrypts its files with (SSE-KMS). Empty: the trail uses SSE-S3 and no kms:Decrypt is granted."
  type        = string
  default     = ""
}

variable "create_restore_role" {
  description = "Also create a separate role that `trailvault restore --to s3://... --role-arn` assumes to write restored files (the sync role stays read-only)."
  type        = bool
  default     = false
}

variable "restore_role_name" {
  description = "Name of the optional restore role."
  type        = string
  default     = "trailvault-restore"
}

variable "restore_bucket" {
  description = "Bucket restores write to (required when create_restore_role is true)."
  type        = string
  default     = ""
}

variable "restore_prefix" {
  description = "Key prefix under restore_bucket that restores may write (\"\" for the whole bucket), without a trailing slash."
  type        = string
  default     = ""
}

variable "restore_kms_key_arn" {
  description = "ARN of the KMS key the restore bucket encrypts with (SSE-KMS), to grant kms:GenerateDataKey. Empty: none."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags put on every resource."
  type        = map(string)
  default     = {}
}
