"""The scoring server: MLflow's scoring protocol and SageMaker's container contract, with
micro-batching, one worker process per core and zero-downtime model swaps."""
