"""The report layer: HTML from results only (never onnxruntime or OpenCV), its sections
and charts, the comparison of several audits, identity, integrity and `verify`."""
