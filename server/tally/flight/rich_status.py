"""gRPC's rich error model for the statuses tally sends: a serialized `google.rpc.Status` (code,
message, and details such as `google.rpc.RetryInfo` and `google.rpc.ErrorInfo`) that travels in
the `grpc-status-details-bin` trailer. pyarrow's Flight server sends a FlightError's
`extra_info` there, so a gRPC client that reads rich errors (grpc-java's StatusProto, Python's
grpcio-status, the Go driver's status.Details) learns the reason and how long to wait.

The messages are declared here (field numbers and types of google/rpc/status.proto and
error_details.proto) and built by the `protobuf` package, as tally.flight.proto does."""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
DOMAIN = "tally"


def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for dependency in (any_pb2, duration_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
            dependency.DESCRIPTOR.serialized_pb))
    f = descriptor_pb2.FileDescriptorProto(
        name="tally_google_rpc.proto", package="google.rpc", syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/duration.proto"])
    fields = {
        "Status": [("code", 1, _F.TYPE_INT32, None), ("message", 2, _F.TYPE_STRING, None),
                   ("details", 3, _F.TYPE_MESSAGE, ".google.protobuf.Any")],
        "RetryInfo": [("retry_delay", 1, _F.TYPE_MESSAGE, ".google.protobuf.Duration")],
        "ErrorInfo": [("reason", 1, _F.TYPE_STRING, None), ("domain", 2, _F.TYPE_STRING, None)],
    }
    for name, specs in fields.items():
        message = f.message_type.add(name=name)
        for field_name, number, kind, type_name in specs:
            repeated = field_name == "details"
            field = message.field.add(
                name=field_name, number=number, type=kind,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
    pool.Add(f)
    return pool


_POOL = _pool()


def message(name: str, **fields: object) -> Message:
    """A new google.rpc message: message("RetryInfo"), message("Status", code=14)."""
    cls = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"google.rpc.{name}"))
    return cls(**fields)


def status(code: int, text: str, reason: str, retry_after: float | None = None) -> bytes:
    """A serialized google.rpc.Status: `code` (the gRPC code the call ends with; clients
    check that the two agree), an ErrorInfo whose reason is tally's error code (upper case,
    as the rich error model spells reasons: TOO_MANY_REQUESTS), and a RetryInfo when the
    caller should wait `retry_after` seconds."""
    rich = message("Status", code=code, message=text)
    rich.details.add().Pack(message("ErrorInfo", reason=reason.upper(), domain=DOMAIN))
    if retry_after is not None:
        retry = message("RetryInfo")
        retry.retry_delay.FromNanoseconds(max(0, int(retry_after * 1e9)))
        rich.details.add().Pack(retry)
    return rich.SerializeToString()


def parse_status(data: bytes) -> Message:
    """A google.rpc.Status from its bytes (for clients and tests)."""
    return message("Status").FromString(data)
