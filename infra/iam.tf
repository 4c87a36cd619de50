# The instances' role: exactly the DynamoDB actions the service calls
# (candidates::store::IAM_ACTIONS), each on the one resource it is called on (Query on the
# listing index, the rest on the table), the CloudWatch agent's writes to the environment's
# log group (logs.tf), plus Session Manager. No SSH key, no other permission.

data "aws_iam_policy_document" "instance_assume_role" {
  statement {
    sid     = "Ec2AssumesTheInstanceRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name                 = "${local.name}-instance"
  description          = "Instances of ${local.name}: the candidates table, its log group and Session Manager"
  assume_role_policy   = data.aws_iam_policy_document.instance_assume_role.json
  max_session_duration = 3600
}

# The actions are literal on purpose: the test suite compares them with
# candidates::store::IAM_ACTIONS, which is itself checked against what the service sends.
data "aws_iam_policy_document" "candidates_table" {
  statement {
    sid    = "CandidatesTable"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [aws_dynamodb_table.candidates.arn]
  }

  statement {
    sid       = "CandidatesListIndex"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.candidates.arn}/index/ByName"]
  }
}

resource "aws_iam_role_policy" "candidates_table" {
  name   = "candidates-table"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.candidates_table.json
}

resource "aws_iam_role_policy_attachment" "session_manager" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${local.name}-instance"
  role = aws_iam_role.instance.name
}
