# Shared by demo.sh and bench.sh: credentials for the local emulators and an rclone
# config for both. Source it after emulators.sh has written $work/ports.env.

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
# Azurite's published development key (not a secret), passed as an operator would: in the environment.
export TRAILVAULT_AZURE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# write_rclone_conf FILE: remotes `s3` (moto) and `azure` (Azurite).
write_rclone_conf() {
  cat >"$1" <<CONF
[s3]
type = s3
provider = Other
access_key_id = test
secret_access_key = test
region = us-east-1
endpoint = http://127.0.0.1:$S3_PORT
force_path_style = true

[azure]
type = azureblob
use_emulator = true
endpoint = http://127.0.0.1:$BLOB_PORT/devstoreaccount1
CONF
}
