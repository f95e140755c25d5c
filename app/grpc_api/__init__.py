"""The Open Inference Protocol over gRPC, beside HTTP, on the same models.

Imported only when ``MNIST_SERVE_GRPC_PORT`` is not 0: the generated protocol
modules (``protos/``) are built from ``protos/inference.proto`` at install time.
"""
