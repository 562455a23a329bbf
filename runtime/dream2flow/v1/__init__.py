"""Generated gRPC stubs of ``protos/dream2flow/v1/*.proto`` (package ``dream2flow.v1``).

Do not edit the ``*_pb2*.py(i)`` files: regenerate them with
``python -m dream2flow.service.protogen`` (grpcio-tools pinned to the installed grpcio);
``tests/test_service_proto.py`` fails when they differ from the ``.proto`` files.
"""
