"""Server reflection under both names clients use: ``grpc.reflection.v1`` (grpcurl, grpc-js
reflection clients, Postman) and the older ``grpc.reflection.v1alpha``.

Why built here: grpcio-reflection ships only v1alpha. The v1 protocol is the same messages
with the same field numbers under another package, so the v1 service reuses the v1alpha
servicer (requests and responses are wire-identical) and its file descriptor is derived from
the v1alpha one at start-up (renamed package) and added to the descriptor pool, so that
``file_containing_symbol("grpc.reflection.v1.ServerReflection")`` answers too.
"""

from __future__ import annotations

from typing import Any, Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = v1alpha.SERVICE_NAME
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor(pool: Any) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(fdp)
    fdp.name = _V1_FILE
    fdp.package = "grpc.reflection.v1"
    fdp.ClearField("options")

    def fix(messages: Iterable[Any]) -> None:
        for m in messages:
            for f in m.field:
                if f.type_name.startswith(".grpc.reflection.v1alpha."):
                    f.type_name = ".grpc.reflection.v1." + f.type_name.rsplit(".", 1)[1]
            fix(m.nested_type)

    fix(fdp.message_type)
    for svc in fdp.service:
        for m in svc.method:
            m.input_type = m.input_type.replace(".v1alpha.", ".v1.")
            m.output_type = m.output_type.replace(".v1alpha.", ".v1.")
    pool.Add(fdp)


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Reflection v1 and v1alpha for ``service_names`` (plus both reflection services)."""
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool)
    names = (*service_names, V1_SERVICE, V1ALPHA_SERVICE)
    servicer = v1alpha.aio.ReflectionServicer(names, pool=pool)
    v1alpha.enable_server_reflection(names, server, pool=pool)
    handler = grpc.method_handlers_generic_handler(V1_SERVICE, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=lambda m: m.SerializeToString())})
    server.add_generic_rpc_handlers((handler,))
