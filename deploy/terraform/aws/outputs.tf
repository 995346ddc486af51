output "role_arn" {
  description = "[aws] role_arn of the read-only sync role (the Azure side's aws_role_arn)."
  value       = aws_iam_role.reader.arn
}

output "restore_role_arn" {
  description = "ARN for `trailvault restore --role-arn` (null unless create_restore_role)."
  value       = var.create_restore_role ? aws_iam_role.restore[0].arn : null
}

output "oidc_provider_arns" {
  description = "ARNs of the IAM OIDC providers by token version (v1: https://sts.windows.net/{tenant_id}/, v2: https://login.microsoftonline.com/{tenant_id}/v2.0)."
  value       = local.oidc_provider_arns
}

output "token_audience" {
  description = "[aws] token_audience: the audience the trust policy requires."
  value       = var.token_audience
}

output "aws_toml" {
  description = "The [aws] section for trailvault.toml."
  value       = <<-TOML
    [aws]
    auth = "azure-federated"
    role_arn = "${aws_iam_role.reader.arn}"
    azure_credential = "managed-identity"
    token_audience = "${var.token_audience}"
    session_name = "trailvault"
  TOML
}
