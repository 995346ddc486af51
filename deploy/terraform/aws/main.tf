# trailvault on AWS: keyless access from Azure. The managed identity's Entra token (audience
# token_audience, subject its principal ID) is exchanged for this role's credentials with
# sts:AssumeRoleWithWebIdentity.
#
# Which issuer the token carries depends on the token version the audience's resource
# application accepts (Microsoft identity platform, "Access tokens": `iss` is
# https://sts.windows.net/{tenant}/ in v1.0 tokens and
# https://login.microsoftonline.com/{tenant}/v2.0 in v2.0 tokens; the version is the
# resource's accessTokenAcceptedVersion, not the caller's). A managed identity's token for
# api://AzureADTokenExchange, the audience Microsoft documents for federation, is a v2.0
# token; for an app registration's own App ID URI with the default accessTokenAcceptedVersion
# (null) it is v1.0. Both issuers get an OIDC provider and a trust statement, so the role
# works with either audience; token_issuers narrows it.

locals {
  # Issuer URL by token version; IAM condition keys are the URL without https://.
  issuer_urls = {
    v1 = "https://sts.windows.net/${var.azure_tenant_id}/"
    v2 = "https://login.microsoftonline.com/${var.azure_tenant_id}/v2.0"
  }
  issuers = { for v in var.token_issuers : v => local.issuer_urls[v] }

  oidc_provider_arns = {
    for v, url in local.issuers : v => (
      var.create_oidc_provider ? aws_iam_openid_connect_provider.entra[v].arn : data.aws_iam_openid_connect_provider.entra[v].arn
    )
  }

  # CloudTrail writes under {prefix}/AWSLogs/ (or AWSLogs/ with no prefix); trailvault lists
  # and reads nothing else.
  awslogs_root = var.trail_prefix == "" ? "AWSLogs/" : "${var.trail_prefix}/AWSLogs/"

  restore_root = var.restore_prefix == "" ? "" : "${var.restore_prefix}/"

  # kms:ViaService names the S3 endpoint of the bucket's region. SSE-KMS needs the key in
  # the bucket's own region, so the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) names it;
  # the provider's region (var.region) is only where the IAM API is called.
  trail_kms_region   = var.trail_kms_key_arn == "" ? "" : split(":", var.trail_kms_key_arn)[3]
  restore_kms_region = var.restore_kms_key_arn == "" ? "" : split(":", var.restore_kms_key_arn)[3]
}

resource "aws_iam_openid_connect_provider" "entra" {
  for_each        = var.create_oidc_provider ? local.issuers : {}
  url             = each.value
  client_id_list  = [var.token_audience]
  thumbprint_list = length(var.oidc_thumbprints) > 0 ? var.oidc_thumbprints : null
  tags            = var.tags
}

data "aws_iam_openid_connect_provider" "entra" {
  for_each = var.create_oidc_provider ? {} : local.issuers
  url      = each.value
}

# Only this managed identity, only with this audience, from either issuer.
data "aws_iam_policy_document" "trust" {
  dynamic "statement" {
    for_each = local.issuers
    content {
      sid     = "TrailvaultManagedIdentity${upper(statement.key)}"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = [local.oidc_provider_arns[statement.key]]
      }

      condition {
        test     = "StringEquals"
        variable = "${trimprefix(statement.value, "https://")}:aud"
        values   = [var.token_audience]
      }

      condition {
        test     = "StringEquals"
        variable = "${trimprefix(statement.value, "https://")}:sub"
        values   = [var.azure_principal_id]
      }
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
        values   = ["s3.${local.trail_kms_region}.amazonaws.com"]
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

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.restore_kms_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "restore" {
  count  = var.create_restore_role ? 1 : 0
  name   = "trailvault-write-restore"
  role   = aws_iam_role.restore[0].id
  policy = data.aws_iam_policy_document.restore.json
}
