"""OTLP receiver: receive (http, grpc, codec) → map (mapping, context) → write (batcher, store)."""
