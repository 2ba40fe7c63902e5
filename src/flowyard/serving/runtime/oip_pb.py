"""Message classes of the Open Inference Protocol's gRPC service, built at import time.

The wire format is what matters for compatibility (package `inference`, message field numbers
and types); we describe it here in our own table instead of shipping a `.proto` and generated
code. The descriptors live in a private pool, so a process may also import another copy of the
same package (tritonclient's, MLServer's) without a "duplicate symbol" clash.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = "inference.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "int32": _F.TYPE_INT32,
            "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32, "uint64": _F.TYPE_UINT64,
            "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE}

# message name -> fields "label type name number"; label "1" singular, "*" repeated,
# "map" a map<string, type>, "oneof" a member of the message's one oneof.
_MESSAGES: dict[str, list[str]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": ["1 bool live 1"],
    "ServerReadyRequest": [],
    "ServerReadyResponse": ["1 bool ready 1"],
    "ModelReadyRequest": ["1 string name 1", "1 string version 2"],
    "ModelReadyResponse": ["1 bool ready 1"],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": ["1 string name 1", "1 string version 2", "* string extensions 3"],
    "ModelMetadataRequest": ["1 string name 1", "1 string version 2"],
    "TensorMetadata": ["1 string name 1", "1 string datatype 2", "* int64 shape 3"],
    "ModelMetadataResponse": ["1 string name 1", "* string versions 2", "1 string platform 3",
                              "* TensorMetadata inputs 4", "* TensorMetadata outputs 5"],
    "InferParameter": ["oneof bool bool_param 1", "oneof int64 int64_param 2", "oneof string string_param 3",
                       "oneof double double_param 4", "oneof uint64 uint64_param 5"],
    "InferTensorContents": ["* bool bool_contents 1", "* int32 int_contents 2", "* int64 int64_contents 3",
                            "* uint32 uint_contents 4", "* uint64 uint64_contents 5", "* float fp32_contents 6",
                            "* double fp64_contents 7", "* bytes bytes_contents 8"],
    "InferInputTensor": ["1 string name 1", "1 string datatype 2", "* int64 shape 3",
                         "map InferParameter parameters 4", "1 InferTensorContents contents 5"],
    "InferRequestedOutputTensor": ["1 string name 1", "map InferParameter parameters 2"],
    "ModelInferRequest": ["1 string model_name 1", "1 string model_version 2", "1 string id 3",
                          "map InferParameter parameters 4", "* InferInputTensor inputs 5",
                          "* InferRequestedOutputTensor outputs 6", "* bytes raw_input_contents 7"],
    "InferOutputTensor": ["1 string name 1", "1 string datatype 2", "* int64 shape 3",
                          "map InferParameter parameters 4", "1 InferTensorContents contents 5"],
    "ModelInferResponse": ["1 string model_name 1", "1 string model_version 2", "1 string id 3",
                           "map InferParameter parameters 4", "* InferOutputTensor outputs 5",
                           "* bytes raw_output_contents 6"],
}

# rpc name -> (request, response); all unary.
METHODS = {name: (f"{name}Request", f"{name}Response")
           for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{type_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="flowyard/oip.proto", package=PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for spec in fields:
            label, type_name, field_name, number = spec.split()
            f = msg.field.add(name=field_name, number=int(number), json_name=field_name)
            if label == "map":
                entry = msg.nested_type.add(name=field_name.title().replace("_", "") + "Entry")
                entry.options.map_entry = True
                _set_type(entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL), "string")
                _set_type(entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL), type_name)
                f.label, f.type = _F.LABEL_REPEATED, _F.TYPE_MESSAGE
                f.type_name = f".{PACKAGE}.{name}.{entry.name}"
                continue
            f.label = _F.LABEL_REPEATED if label == "*" else _F.LABEL_OPTIONAL
            _set_type(f, type_name)
            if label == "oneof":
                if not msg.oneof_decl:
                    msg.oneof_decl.add(name="parameter_choice")
                f.oneof_index = 0
    svc = fd.service.add(name=SERVICE.rsplit(".", 1)[1])
    for rpc, (req, resp) in METHODS.items():
        svc.method.add(name=rpc, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}")
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
messages = {name: message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES}
