"""Efficiency measurement (latency, throughput, memory, energy), plots, and ONNX export for CPU deployment."""
