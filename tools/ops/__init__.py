"""Operations tools (boto3) around the Pulumi program: ``bootstrap`` (state backend and secrets provider
for an account) and ``verify`` (the live account against a stack's outputs after ``pulumi up``).

Both are plain functions taking boto3 clients (tested against moto) with thin argparse CLIs:
``python -m tools.ops.bootstrap --help``, ``python -m tools.ops.verify --help``.
"""
