"""The control centre's CDK app: settings, constructs (one capability per file) and stacks."""
