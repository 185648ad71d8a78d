"""``mlops remote ...``: the control centre on AWS, driven from a workstation or CI.

Everything is found from the ``MlopsControl`` stack's outputs (:mod:`.outputs`); boto3 clients
are passed in, so the tests hand in moto or Stubber clients (both validate every request).
"""
