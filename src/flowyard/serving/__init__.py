"""Model serving: the `InferenceService` kind, its controller, the REST and gRPC gateway to its
replicas, and (in `runtime/`) the model server each replica runs."""
