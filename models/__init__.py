"""Model packages (.onnx + JSON manifest) and the technicians' tooling around them."""
