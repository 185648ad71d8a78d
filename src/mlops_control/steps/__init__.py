"""The workflow steps, defined once.

Plain functions over the registry client and one small backend interface. The local runtime
calls them in order; on AWS the Lambdas call the same functions as glue between the Step
Functions' SageMaker tasks. Standard library only (the Lambdas import this package).
"""
