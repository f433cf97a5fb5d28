"""Grading a frame: the model package's manifest, preprocessing, the onnxruntime session
(`grader`) and decoding its outputs into damages and a grade (`decode`)."""
