# Events (optional, var.events_queue): S3 announces each new trail file on an SQS queue, and
# trailvault (`drain`, the daemon, the Functions `drain` timer) archives it minutes after
# delivery. The scheduled sync stays the completeness check, so a lost event costs latency,
# not data.
#
# Two ways to connect the bucket:
# - events_via = "s3-notification": an S3 bucket notification for ObjectCreated under the
#   trail's AWSLogs/ prefix, straight to the queue. A bucket has ONE notification
#   configuration: this resource replaces any other on the bucket, so use it only where the
#   bucket has none.
# - events_via = "eventbridge": where the bucket already has a notification configuration
#   (another consumer), turn on the bucket's EventBridge delivery (this module does that with
#   aws_s3_bucket_notification { eventbridge = true } only when events_manage_bucket_eventbridge
#   is true; otherwise enable it beside the existing configuration yourself) and an
#   EventBridge rule sends `Object Created` events for the prefix to the queue.

locals {
  events     = var.events_queue
  queue_name = "${var.role_name}-events"
}

resource "aws_sqs_queue" "events_dlq" {
  count                     = local.events ? 1 : 0
  name                      = "${local.queue_name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "events" {
  count = local.events ? 1 : 0
  name  = local.queue_name
  # Longer than one file's copy; trailvault extends it for files still in flight.
  visibility_timeout_seconds = 120
  receive_wait_time_seconds  = 20
  message_retention_seconds  = 345600
  sqs_managed_sse_enabled    = true
  # A message that failed this many receives waits in the DLQ; the scheduled sync has
  # archived its files in the meantime.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq[0].arn
    maxReceiveCount     = var.events_max_receives
  })
  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  count     = local.events ? 1 : 0
  queue_url = aws_sqs_queue.events_dlq[0].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events[0].arn]
  })
}

# Only the trail bucket (S3) or the rule (EventBridge) may send to the queue.
data "aws_iam_policy_document" "events_queue" {
  count = local.events ? 1 : 0
  statement {
    sid       = "FromTrailBucket"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events[0].arn]
    principals {
      type        = "Service"
      identifiers = [var.events_via == "eventbridge" ? "events.amazonaws.com" : "s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.events_via == "eventbridge" ? aws_cloudwatch_event_rule.trail_objects[0].arn : "arn:aws:s3:::${var.trail_bucket}"]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  count     = local.events ? 1 : 0
  queue_url = aws_sqs_queue.events[0].id
  policy    = data.aws_iam_policy_document.events_queue[0].json
}

resource "aws_s3_bucket_notification" "trail" {
  count  = local.events && (var.events_via == "s3-notification" || var.events_manage_bucket_eventbridge) ? 1 : 0
  bucket = var.trail_bucket
  # With events_via = "eventbridge" this only turns EventBridge delivery on.
  eventbridge = var.events_via == "eventbridge"

  dynamic "queue" {
    for_each = var.events_via == "s3-notification" ? [1] : []
    content {
      queue_arn     = aws_sqs_queue.events[0].arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = local.awslogs_root
    }
  }
  depends_on = [aws_sqs_queue_policy.events]
}

resource "aws_cloudwatch_event_rule" "trail_objects" {
  count       = local.events && var.events_via == "eventbridge" ? 1 : 0
  name        = "${local.queue_name}-created"
  description = "trailvault: new CloudTrail files in ${var.trail_bucket}/${local.awslogs_root}"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [var.trail_bucket] }
      object = { key = [{ prefix = local.awslogs_root }] }
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "trail_objects" {
  count = local.events && var.events_via == "eventbridge" ? 1 : 0
  rule  = aws_cloudwatch_event_rule.trail_objects[0].name
  arn   = aws_sqs_queue.events[0].arn
}

# The read role may work this queue and nothing else in SQS.
data "aws_iam_policy_document" "reader_events" {
  count = local.events ? 1 : 0
  statement {
    sid    = "WorkEventsQueue"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.events[0].arn]
  }
}

resource "aws_iam_role_policy" "reader_events" {
  count  = local.events ? 1 : 0
  name   = "trailvault-events-queue"
  role   = aws_iam_role.reader.id
  policy = data.aws_iam_policy_document.reader_events[0].json
}

variable "events_queue" {
  description = "Create the events queue (with a dead-letter queue) and connect the trail bucket to it."
  type        = bool
  default     = false
}

variable "events_via" {
  description = "How the bucket announces new files: \"s3-notification\" (the bucket has no other notification configuration) or \"eventbridge\"."
  type        = string
  default     = "s3-notification"
  validation {
    condition     = contains(["s3-notification", "eventbridge"], var.events_via)
    error_message = "events_via must be \"s3-notification\" or \"eventbridge\"."
  }
}

variable "events_manage_bucket_eventbridge" {
  description = "With events_via = \"eventbridge\": let this module turn on the bucket's EventBridge delivery (it owns the bucket's notification configuration then). Leave false when another stack owns it."
  type        = bool
  default     = false
}

variable "events_max_receives" {
  description = "Receives of one message before it goes to the dead-letter queue."
  type        = number
  default     = 5
  validation {
    condition     = var.events_max_receives >= 1 && var.events_max_receives <= 1000
    error_message = "events_max_receives must be between 1 and 1000."
  }
}

output "events_queue_url" {
  description = "[[source]] queue_url for trailvault (null when events_queue is false)."
  value       = local.events ? aws_sqs_queue.events[0].id : null
}
