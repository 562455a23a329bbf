"""Export tools: official checkpoints -> ONNX (+ parity check + manifest entry) -> TensorRT engines.
May import torch and transformers; the runtime (runtime/dream2flow) never does."""
