terraform {
  required_version = ">= 1.6"

  required_providers {
    # 5.81 or later: thumbprint_list of aws_iam_openid_connect_provider is optional (AWS
    # validates the Entra issuer against its own trusted CAs).
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.81"
    }
  }
}

provider "aws" {
  region = var.region
}
