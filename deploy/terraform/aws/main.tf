# trailvault on AWS: keyless access from Azure. The managed identity's Entra token (issuer
# https://sts.windows.net/{tenant}/, audience token_audience, subject its principal ID) is
# exchanged for this role's credentials with sts:AssumeRoleWithWebIdentity.

locals {
  # The issuer of the managed identity's (v1) Entra tokens; IAM condition keys drop https://.
  issuer_url = "https://sts.windows.net/${var.azure_tenant_id}/"

  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.entra[0].arn : data.aws_iam_openid_connect_provider.entra[0].arn

  # CloudTrail writes under {prefix}/AWSLogs/ (or AWSLogs/ with no prefix); trailvault lists
  # and reads nothing else.
  awslogs_root = var.trail_prefix == "" ? "AWSLogs/" : "${var.trail_prefix}/AWSLogs/"

  restore_root = var.restore_prefix == "" ? "" : "${var.restore_prefix}/"
}

resource "aws_iam_openid_connect_provider" "entra" {
  count           = var.create_oidc_provider ? 1 : 0
  url             = "https://sts.windows.net/${var.azure_tenant_id}/"
  client_id_list  = [var.token_audience]
  thumbprint_list = length(var.oidc_thumbprints) > 0 ? var.oidc_thumbprints : null
  tags            = var.tags
}

data "aws_iam_openid_connect_provider" "entra" {
  count = var.create_oidc_provider ? 0 : 1
  url   = local.issuer_url
}

# Only this managed identity, only with this audience.
data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "TrailvaultManagedIdentity"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts.windows.net/${var.azure_tenant_id}/:aud"
      values   = [var.token_audience]
    }

    condition {
      test     = "StringEquals"
      variable = "sts.windows.net/${var.azure_tenant_id}/:sub"
      values   = [var.azure_principal_id]
    }
  }
}

resource "aws_iam_role" "reader" {
  name                 = var.role_name
  description          = "trailvault: read the CloudTrail bucket from Azure (managed identity ${var.azure_principal_id})"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

# Least privilege: list and read the trail's files, decrypt them when the trail uses KMS,
# and fetch CloudTrail's public keys for digest validation.
data "aws_iam_policy_document" "reader" {
  statement {
    sid       = "ListTrailPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::${var.trail_bucket}"]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.awslogs_root}*"]
    }
  }

  statement {
    sid       = "ReadTrailFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${var.trail_bucket}/${local.awslogs_root}*"]
  }

  dynamic "statement" {
    for_each = var.trail_kms_key_arn == "" ? [] : [var.trail_kms_key_arn]
    content {
      sid       = "DecryptTrailFiles"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "CloudTrailPublicKeys"
    effect    = "Allow"
    actions   = ["cloudtrail:ListPublicKeys"]
    resources = ["*"] # ListPublicKeys has no resource-level permissions.
  }
}

data "aws_region" "current" {}

resource "aws_iam_role_policy" "reader" {
  name   = "trailvault-read-trail"
  role   = aws_iam_role.reader.id
  policy = data.aws_iam_policy_document.reader.json
}

# --- Optional restore role --------------------------------------------------------------

resource "aws_iam_role" "restore" {
  count                = var.create_restore_role ? 1 : 0
  name                 = var.restore_role_name
  description          = "trailvault restore: write restored CloudTrail files from Azure (managed identity ${var.azure_principal_id})"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.restore_bucket != ""
      error_message = "create_restore_role needs restore_bucket."
    }
  }
}

data "aws_iam_policy_document" "restore" {
  statement {
    sid       = "WriteRestoredFiles"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["arn:aws:s3:::${var.restore_bucket}/${local.restore_root}*"]
  }

  # HeadObject on a key that is not there answers 404 (not 403) only with ListBucket.
  statement {
    sid       = "ListRestorePrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::${var.restore_bucket}"]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.restore_root}*"]
    }
  }

  dynamic "statement" {
    for_each = var.restore_kms_key_arn == "" ? [] : [var.restore_kms_key_arn]
    content {
      sid       = "EncryptRestoredFiles"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "restore" {
  count  = var.create_restore_role ? 1 : 0
  name   = "trailvault-write-restore"
  role   = aws_iam_role.restore[0].id
  policy = data.aws_iam_policy_document.restore.json
}
