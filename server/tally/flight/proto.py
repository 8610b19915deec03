"""The Flight SQL messages tally speaks, as protobuf message classes built by the `protobuf`
package from descriptors declared here (the messages, field numbers and types of Arrow's
FlightSql.proto and of the session messages of Flight.proto). protobuf does all encoding and
decoding; commands travel packed in `google.protobuf.Any`, as Flight SQL requires.

Only the messages tally handles are declared; a command of another type is recognised by its
type URL and answered as unimplemented."""

from __future__ import annotations

from typing import Any as AnyType

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

SQL = "arrow.flight.protocol.sql"
FLIGHT = "arrow.flight.protocol"
_F = descriptor_pb2.FieldDescriptorProto
STRING, BYTES, BOOL = _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_BOOL
UINT32, INT32, INT64 = _F.TYPE_UINT32, _F.TYPE_INT32, _F.TYPE_INT64
SFIXED64, DOUBLE, MESSAGE, ENUM = _F.TYPE_SFIXED64, _F.TYPE_DOUBLE, _F.TYPE_MESSAGE, _F.TYPE_ENUM
REPEATED = "repeated"
OPTIONAL = "optional"  # proto3 `optional`: the field has presence (HasField), e.g. a filter

# message -> [(field, number, type, repeated?, type name for messages and enums)]
_SQL_MESSAGES: dict[str, list[tuple]] = {
    "CommandGetSqlInfo": [("info", 1, UINT32, REPEATED)],
    "CommandGetXdbcTypeInfo": [("data_type", 1, INT32, OPTIONAL)],
    "CommandGetCatalogs": [],
    "CommandGetDbSchemas": [("catalog", 1, STRING, OPTIONAL),
                            ("db_schema_filter_pattern", 2, STRING, OPTIONAL)],
    "CommandGetTables": [
        ("catalog", 1, STRING, OPTIONAL), ("db_schema_filter_pattern", 2, STRING, OPTIONAL),
        ("table_name_filter_pattern", 3, STRING, OPTIONAL), ("table_types", 4, STRING, REPEATED),
        ("include_schema", 5, BOOL),
    ],
    "CommandGetTableTypes": [],
    "CommandGetPrimaryKeys": [("catalog", 1, STRING), ("db_schema", 2, STRING),
                              ("table", 3, STRING)],
    "CommandGetExportedKeys": [("catalog", 1, STRING), ("db_schema", 2, STRING),
                               ("table", 3, STRING)],
    "CommandGetImportedKeys": [("catalog", 1, STRING), ("db_schema", 2, STRING),
                               ("table", 3, STRING)],
    "ActionCreatePreparedStatementRequest": [("query", 1, STRING), ("transaction_id", 2, BYTES)],
    "ActionCreatePreparedStatementResult": [
        ("prepared_statement_handle", 1, BYTES), ("dataset_schema", 2, BYTES),
        ("parameter_schema", 3, BYTES),
    ],
    "ActionClosePreparedStatementRequest": [("prepared_statement_handle", 1, BYTES)],
    "CommandStatementQuery": [("query", 1, STRING), ("transaction_id", 2, BYTES)],
    "TicketStatementQuery": [("statement_handle", 1, BYTES)],
    "CommandPreparedStatementQuery": [("prepared_statement_handle", 1, BYTES)],
    "CommandStatementUpdate": [("query", 1, STRING), ("transaction_id", 2, BYTES)],
    "CommandPreparedStatementUpdate": [("prepared_statement_handle", 1, BYTES)],
    "DoPutUpdateResult": [("record_count", 1, INT64)],
    "DoPutPreparedStatementResult": [("prepared_statement_handle", 1, BYTES)],
}

_VALUE = f".{FLIGHT}.SessionOptionValue"
_FLIGHT_MESSAGES: dict[str, list[tuple]] = {
    "SessionOptionValue": [
        ("string_value", 1, STRING, None, None, 0), ("bool_value", 2, BOOL, None, None, 0),
        ("int64_value", 3, SFIXED64, None, None, 0), ("double_value", 4, DOUBLE, None, None, 0),
        ("string_list_value", 5, MESSAGE, None, f"{_VALUE}.StringListValue", 0),
    ],
    "SessionOptionValue.StringListValue": [("values", 1, STRING, REPEATED)],
    "SetSessionOptionsRequest": [("session_options", 1, MESSAGE, REPEATED,
                                  f".{FLIGHT}.SetSessionOptionsRequest.SessionOptionsEntry")],
    "SetSessionOptionsRequest.SessionOptionsEntry": [
        ("key", 1, STRING), ("value", 2, MESSAGE, None, _VALUE)],
    "SetSessionOptionsResult": [("errors", 1, MESSAGE, REPEATED,
                                 f".{FLIGHT}.SetSessionOptionsResult.ErrorsEntry")],
    "SetSessionOptionsResult.Error": [
        ("value", 1, ENUM, None, f".{FLIGHT}.SetSessionOptionsResult.ErrorValue")],
    "SetSessionOptionsResult.ErrorsEntry": [
        ("key", 1, STRING), ("value", 2, MESSAGE, None,
                             f".{FLIGHT}.SetSessionOptionsResult.Error")],
    "GetSessionOptionsRequest": [],
    "GetSessionOptionsResult": [("session_options", 1, MESSAGE, REPEATED,
                                 f".{FLIGHT}.GetSessionOptionsResult.SessionOptionsEntry")],
    "GetSessionOptionsResult.SessionOptionsEntry": [
        ("key", 1, STRING), ("value", 2, MESSAGE, None, _VALUE)],
    "CloseSessionRequest": [],
    "CloseSessionResult": [
        ("status", 1, ENUM, None, f".{FLIGHT}.CloseSessionResult.Status")],
}
_FLIGHT_ENUMS = {
    "SetSessionOptionsResult.ErrorValue": ["UNSPECIFIED", "INVALID_NAME", "INVALID_VALUE",
                                           "ERROR"],
    "CloseSessionResult.Status": ["UNSPECIFIED", "CLOSED", "CLOSING", "NOT_CLOSEABLE"],
}
_MAP_ENTRIES = {"SessionOptionsEntry", "ErrorsEntry"}
_ONEOFS = {"SessionOptionValue": "option_value"}


def _file(name: str, package: str, messages: dict[str, list[tuple]],
          enums: dict[str, list[str]]) -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for path in sorted(messages, key=lambda p: p.count(".")):  # parents before nested types
        parent, _, leaf = path.rpartition(".")
        container = declared[parent].nested_type if parent else f.message_type
        message = container.add(name=leaf)
        declared[path] = message
        if leaf in _MAP_ENTRIES:
            message.options.map_entry = True
        if leaf in _ONEOFS:
            message.oneof_decl.add(name=_ONEOFS[leaf])
        for spec in messages[path]:
            field_name, number, kind = spec[:3]
            repeated = len(spec) > 3 and spec[3] == REPEATED
            field = message.field.add(
                name=field_name, number=number, type=kind,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if len(spec) > 4 and spec[4]:
                field.type_name = spec[4]
            if len(spec) > 5:
                field.oneof_index = spec[5]
            if len(spec) > 3 and spec[3] == OPTIONAL:  # a synthetic oneof, as protoc makes
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field_name}")
    for path, values in enums.items():
        parent, _, leaf = path.rpartition(".")
        enum = declared[parent].enum_type.add(name=leaf)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file("tally_flight_sql.proto", SQL, _SQL_MESSAGES, {}))
_POOL.Add(_file("tally_flight_sessions.proto", FLIGHT, _FLIGHT_MESSAGES, _FLIGHT_ENUMS))


def message_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


def sql(name: str, **fields: AnyType) -> Message:
    """A new Flight SQL message, e.g. sql("CommandStatementQuery", query="...")."""
    return message_class(f"{SQL}.{name}")(**fields)


def flight(name: str, **fields: AnyType) -> Message:
    """A new Flight session message, e.g. flight("CloseSessionResult", status=1)."""
    return message_class(f"{FLIGHT}.{name}")(**fields)


def pack(message: Message) -> bytes:
    """The message wrapped in google.protobuf.Any, serialized (a command or a ticket)."""
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped.SerializeToString()


class UnknownCommand(Exception):
    """Bytes that are an Any of a type tally does not speak (or no Any at all)."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self.type_url = type_url


def unpack(data: bytes) -> Message:
    """The Flight SQL message inside serialized Any bytes."""
    wrapped = any_pb2.Any()
    try:
        wrapped.ParseFromString(data)
    except DecodeError:
        raise UnknownCommand("(not a protobuf Any)") from None
    name = wrapped.type_url.rpartition("/")[2]
    try:
        cls = message_class(name)
    except KeyError:
        raise UnknownCommand(wrapped.type_url or "(empty)") from None
    message = cls()
    try:
        message.ParseFromString(wrapped.value)
    except DecodeError:
        raise UnknownCommand(wrapped.type_url) from None
    return message


def name_of(message: Message) -> str:
    """The message's short name: CommandStatementQuery."""
    return message.DESCRIPTOR.name


def parse(name: str, data: bytes, package: str = SQL) -> Message:
    """A message of a known type from its bytes (action bodies are not wrapped in Any)."""
    message = message_class(f"{package}.{name}")()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise UnknownCommand(f"{package}.{name}") from None
    return message
