"""The six VDA 5050 messages as typed models that round-trip exactly.

Both sides use these: the master parses state/connection/factsheet/visualization and
builds order/instantActions, the emulated vehicle does the reverse. Parsing a payload
with `decode` accepts exactly what the official 2.1.0 JSON schemas accept (plus the
uint32 ranges the specification states), so a message that passes here is one a
conformant peer could have sent. Where the official schema contradicts the
specification text (the specification says its text wins) the models follow the text:

- actionStatus 'PAUSED' is in the text but missing from state.schema;
- factsheet `blockingTypes` is declared as an array whose value must be one of three
  strings, which no value satisfies; the models accept an array of blocking types;
- factsheet envelope3d `description` is an integer in the schema, a string in the text.

Round trip: `decode(kind, encode(message))` equals `message`, and `encode(decode(kind,
payload))` is the same JSON object as `payload`. Optional fields are omitted when absent,
never sent as null (the schemas allow no nulls), and fields this code does not know
(vendor extensions, which the schemas permit) are kept and sent back unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic.alias_generators import to_camel

SUPPORTED_VERSIONS = ("2.0.0", "2.1.0")
LATEST_VERSION = "2.1.0"

# The schemas bound angles by these literals, a hair wider than math.pi.
_PI = 3.14159265359
_UINT32_MAX = 2**32 - 1


class MessageError(ValueError):
    """A payload that is not a valid message of the expected kind, with the reason why."""

    def __init__(self, kind: str, reason: str, detail: str) -> None:
        super().__init__(f"{kind}: {reason}: {detail}")
        self.kind = kind
        self.reason = reason  # "bad JSON" or "schema violation"
        self.detail = detail


# --- field types -------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _check_timestamp(value: str) -> str:
    if not _TIMESTAMP.match(value):
        raise ValueError(f"timestamp {value!r} is not ISO 8601 (YYYY-MM-DDTHH:mm:ss.ffZ)")
    parse_timestamp(value)  # rejects impossible dates such as month 13
    return value


def _check_version(value: str) -> str:
    if value not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"unsupported protocol version {value!r} (supported: {', '.join(SUPPORTED_VERSIONS)})"
        )
    return value


Timestamp = Annotated[str, AfterValidator(_check_timestamp)]
Version = Annotated[str, AfterValidator(_check_version)]
UInt32 = Annotated[int, Field(ge=0, le=_UINT32_MAX)]
Angle = Annotated[float, Field(ge=-_PI, le=_PI)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def format_timestamp(moment: datetime) -> str:
    """The header form: UTC with milliseconds and a Z, e.g. 2017-04-15T11:40:03.120Z.

    Every message sent is stamped, so this runs per message: isoformat (C) rather than
    strftime, and the "+00:00" it writes for UTC becomes the "Z" the examples use.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamp needs an aware datetime (UTC)")
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"timestamp {value!r} is not a valid date and time: {exc}") from None
    return moment.astimezone(UTC)


# --- enumerations (spelled as on the wire) ------------------------------------------


class BlockingType(StrEnum):
    NONE = "NONE"
    SOFT = "SOFT"
    HARD = "HARD"


class ActionStatus(StrEnum):
    WAITING = "WAITING"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"  # specification text only; see the module docstring
    FINISHED = "FINISHED"
    FAILED = "FAILED"


class ErrorLevel(StrEnum):
    WARNING = "WARNING"
    FATAL = "FATAL"


class InfoLevel(StrEnum):
    INFO = "INFO"
    DEBUG = "DEBUG"


class ConnectionState(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    CONNECTIONBROKEN = "CONNECTIONBROKEN"


class OperatingMode(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"
    SERVICE = "SERVICE"
    TEACHIN = "TEACHIN"


class EStop(StrEnum):
    AUTOACK = "AUTOACK"
    MANUAL = "MANUAL"
    REMOTE = "REMOTE"
    NONE = "NONE"


class MapStatus(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class OrientationType(StrEnum):
    GLOBAL = "GLOBAL"
    TANGENTIAL = "TANGENTIAL"


class CorridorRefPoint(StrEnum):
    KINEMATICCENTER = "KINEMATICCENTER"
    CONTOUR = "CONTOUR"


class AgvKinematic(StrEnum):
    DIFF = "DIFF"
    OMNI = "OMNI"
    THREEWHEEL = "THREEWHEEL"


class AgvClass(StrEnum):
    FORKLIFT = "FORKLIFT"
    CONVEYOR = "CONVEYOR"
    TUGGER = "TUGGER"
    CARRIER = "CARRIER"


class LocalizationType(StrEnum):
    NATURAL = "NATURAL"
    REFLECTOR = "REFLECTOR"
    RFID = "RFID"
    DMC = "DMC"
    SPOT = "SPOT"
    GRID = "GRID"


class NavigationType(StrEnum):
    PHYSICAL_LINE_GUIDED = "PHYSICAL_LINE_GUIDED"
    VIRTUAL_LINE_GUIDED = "VIRTUAL_LINE_GUIDED"
    AUTONOMOUS = "AUTONOMOUS"


class Support(StrEnum):
    SUPPORTED = "SUPPORTED"
    REQUIRED = "REQUIRED"


class ActionScope(StrEnum):
    INSTANT = "INSTANT"
    NODE = "NODE"
    EDGE = "EDGE"


class ValueDataType(StrEnum):
    BOOL = "BOOL"
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    STRING = "STRING"
    OBJECT = "OBJECT"
    ARRAY = "ARRAY"


class WheelType(StrEnum):
    DRIVE = "DRIVE"
    CASTER = "CASTER"
    FIXED = "FIXED"
    MECANUM = "MECANUM"


class PredefinedAction(StrEnum):
    """The action types of section 6.8.1; vehicles may define more (actionType is free text)."""

    START_PAUSE = "startPause"
    STOP_PAUSE = "stopPause"
    START_CHARGING = "startCharging"
    STOP_CHARGING = "stopCharging"
    INIT_POSITION = "initPosition"
    ENABLE_MAP = "enableMap"
    DOWNLOAD_MAP = "downloadMap"
    DELETE_MAP = "deleteMap"
    STATE_REQUEST = "stateRequest"
    LOG_REPORT = "logReport"
    PICK = "pick"
    DROP = "drop"
    DETECT_OBJECT = "detectObject"
    FINE_POSITIONING = "finePositioning"
    WAIT_FOR_TRIGGER = "waitForTrigger"
    CANCEL_ORDER = "cancelOrder"
    FACTSHEET_REQUEST = "factsheetRequest"


# Enum fields accept their plain string value from Python code too (wire input is always
# a string); every other field is strict, so "1" is never an integer and 0 never false.
def _lax(kind: type[StrEnum]) -> Any:
    return Annotated[kind, Strict(False)]


# --- base model -------------------------------------------------------------------------


class Wire(BaseModel):
    """Common configuration: camelCase on the wire, snake_case in Python, strict types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        strict=True,
        allow_inf_nan=False,  # the specification excludes NaN and infinity
        extra="allow",  # the schemas allow vendor fields; keep them for the round trip
        frozen=True,
    )


M = TypeVar("M", bound=Wire)


def encode(message: Wire) -> bytes:
    """The JSON bytes of a message, optional fields that are None left out.

    Serialised by pydantic-core straight to JSON: half the cost of building a dict of
    the message and dumping that, and both sides encode every message they send.
    """
    return message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_none=True)


# How every message we build begins before the MQTT link stamps it (headerId and timestamp
# are the first two fields of every model that has them).
UNSTAMPED = "1970-01-01T00:00:00.000Z"
_UNSTAMPED_HEAD = b'{"headerId":0,"timestamp":"' + UNSTAMPED.encode() + b'",'


def encode_stamped(message: Wire, header_id: int, timestamp: str) -> bytes:
    """encode() of the message with this headerId and timestamp, without copying the model.

    A message built unstamped (headerId 0, timestamp UNSTAMPED) has the two in a fixed
    prefix of its JSON, which is replaced; any other message goes the long way.
    """
    payload = encode(message)
    if payload.startswith(_UNSTAMPED_HEAD):
        return b'{"headerId":%d,"timestamp":"%s",' % (header_id, timestamp.encode()) + payload[len(_UNSTAMPED_HEAD):]
    body = orjson.loads(payload)
    body["headerId"], body["timestamp"] = header_id, timestamp
    return orjson.dumps(body)


def decode(kind: type[M], payload: bytes | str) -> M:
    """Parse and validate one message; raise MessageError with the first problem found.

    Only the camelCase names count on the wire (a snake_case key is an unknown, extra
    field, as for the schema), and no field may be null.
    """
    try:
        message = kind.model_validate_json(payload, by_alias=True, by_name=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = kind.__name__
        if first["type"] == "json_invalid":
            raise MessageError(name, "bad JSON", first["msg"]) from None
        where = ".".join(str(part) for part in first["loc"]) or "(message)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        text = first["msg"].removeprefix("Value error, ")
        raise MessageError(name, "schema violation", f"{where}: {text}{more}") from None
    # Checking every model for nulls costs more than the parse; a payload without the
    # four letters anywhere cannot have one.
    if (b"null" if isinstance(payload, bytes) else "null") in payload:
        where = _null_field(message, "")
        if where is not None:
            raise MessageError(kind.__name__, "schema violation", f"{where} is null: omit an optional field instead")
    return message


def _null_field(model: Wire, path: str) -> str | None:
    """The path of the first field given as null, or None."""
    extra = model.__pydantic_extra__
    if extra:
        for key, value in extra.items():
            if value is None:
                return path + key
    given = model.__pydantic_fields_set__
    values = model.__dict__
    for name, alias in _wire_names(type(model)):
        if name not in given:
            continue
        value = values[name]
        if value is None:
            return path + alias
        if isinstance(value, Wire):
            found = _null_field(value, f"{path}{alias}.")
        elif isinstance(value, list) and value and isinstance(value[0], Wire):
            found = next((hit for i, item in enumerate(value)
                          if (hit := _null_field(item, f"{path}{alias}.{i}.")) is not None), None)
        else:
            continue
        if found is not None:
            return found
    return None


@cache
def _wire_names(kind: type[Wire]) -> tuple[tuple[str, str], ...]:
    """(Python name, wire name) of each field, in declaration order."""
    return tuple((name, info.alias or name) for name, info in kind.__pydantic_fields__.items())


# --- header -------------------------------------------------------------------------------


class Header(Wire):
    """The five header fields every message but factsheet and visualization requires."""

    header_id: UInt32
    timestamp: Timestamp
    version: Version
    manufacturer: str
    serial_number: str


# --- order and instantActions -----------------------------------------------------------


class ActionParameter(Wire):
    key: str
    # array, boolean, number, string or object; never null itself (see _null_field)
    value: list[Any] | bool | int | float | str | dict[str, Any]


class Action(Wire):
    action_type: str
    action_id: str
    action_description: str | None = None
    blocking_type: _lax(BlockingType)
    action_parameters: list[ActionParameter] | None = None


class NodePosition(Wire):
    x: float
    y: float
    theta: Angle | None = None
    allowed_deviation_xy: NonNegative | None = Field(default=None, alias="allowedDeviationXY")
    allowed_deviation_theta: Annotated[float, Field(ge=0, le=3.141592654)] | None = None
    map_id: str
    map_description: str | None = None


class Node(Wire):
    node_id: str
    sequence_id: UInt32
    node_description: str | None = None
    released: bool
    node_position: NodePosition | None = None
    actions: list[Action]


class ControlPoint(Wire):
    x: float
    y: float
    weight: NonNegative | None = None


class Trajectory(Wire):
    degree: Annotated[int, Field(ge=1)]
    knot_vector: list[Fraction]
    control_points: list[ControlPoint]


class Corridor(Wire):
    left_width: NonNegative
    right_width: NonNegative
    corridor_ref_point: _lax(CorridorRefPoint) | None = None


class Edge(Wire):
    edge_id: str
    sequence_id: UInt32
    edge_description: str | None = None
    released: bool
    start_node_id: str
    end_node_id: str
    max_speed: float | None = None
    max_height: float | None = None
    min_height: float | None = None
    orientation: Angle | None = None
    orientation_type: _lax(OrientationType) | None = None
    direction: str | None = None
    rotation_allowed: bool | None = None
    max_rotation_speed: float | None = None
    length: float | None = None
    trajectory: Trajectory | None = None
    corridor: Corridor | None = None  # new in 2.1.0
    actions: list[Action]


class Order(Header):
    order_id: str
    order_update_id: UInt32
    zone_set_id: str | None = None
    nodes: list[Node]
    edges: list[Edge]


class InstantActions(Header):
    actions: list[Action]


# --- state ---------------------------------------------------------------------------------


class VehicleMap(Wire):
    """A map stored on the vehicle (state.maps, new in 2.1.0)."""

    map_id: str
    map_version: str
    map_description: str | None = None
    map_status: _lax(MapStatus)


class NodeState(Wire):
    node_id: str
    sequence_id: UInt32
    node_description: str | None = None
    released: bool
    node_position: NodePosition | None = None


class EdgeState(Wire):
    edge_id: str
    sequence_id: UInt32
    edge_description: str | None = None
    released: bool
    trajectory: Trajectory | None = None


class AgvPosition(Wire):
    x: float
    y: float
    theta: float
    map_id: str
    map_description: str | None = None
    position_initialized: bool
    localization_score: Fraction | None = None
    deviation_range: float | None = None


class Velocity(Wire):
    vx: float | None = None
    vy: float | None = None
    omega: float | None = None


class BoundingBoxReference(Wire):
    x: float
    y: float
    z: float
    theta: float | None = None


class LoadDimensions(Wire):
    length: float
    width: float
    height: float | None = None


class Load(Wire):
    load_id: str | None = None
    load_type: str | None = None
    load_position: str | None = None
    bounding_box_reference: BoundingBoxReference | None = None
    load_dimensions: LoadDimensions | None = None
    weight: NonNegative | None = None


class ActionState(Wire):
    action_id: str
    action_type: str | None = None
    action_description: str | None = None
    action_status: _lax(ActionStatus)
    result_description: str | None = None


class BatteryState(Wire):
    battery_charge: float  # percent
    battery_voltage: float | None = None
    battery_health: Annotated[float, Field(ge=0, le=100)] | None = None
    charging: bool
    reach: NonNegative | None = None


class Reference(Wire):
    """An error or information reference (the two have the same shape)."""

    reference_key: str
    reference_value: str


class VehicleError(Wire):
    error_type: str
    error_references: list[Reference] | None = None
    error_description: str | None = None
    error_hint: str | None = None
    error_level: _lax(ErrorLevel)


class Info(Wire):
    info_type: str
    info_references: list[Reference] | None = None
    info_description: str | None = None
    info_level: _lax(InfoLevel)


class SafetyState(Wire):
    e_stop: _lax(EStop)
    field_violation: bool


class State(Header):
    maps: list[VehicleMap] | None = None
    order_id: str
    order_update_id: UInt32
    zone_set_id: str | None = None
    last_node_id: str
    last_node_sequence_id: UInt32
    driving: bool
    paused: bool | None = None
    new_base_request: bool | None = None
    distance_since_last_node: float | None = None
    operating_mode: _lax(OperatingMode)
    node_states: list[NodeState]
    edge_states: list[EdgeState]
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None
    loads: list[Load] | None = None  # absent: the vehicle cannot tell; []: unloaded
    action_states: list[ActionState]
    battery_state: BatteryState
    errors: list[VehicleError]
    information: list[Info] | None = None
    safety_state: SafetyState


# --- connection and visualization -----------------------------------------------------------


class Connection(Header):
    connection_state: _lax(ConnectionState)


class Visualization(Wire):
    """A high-rate position report; the schema makes every field optional, header included."""

    header_id: UInt32 | None = None
    timestamp: Timestamp | None = None
    version: Version | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None


# --- factsheet -------------------------------------------------------------------------------


class TypeSpecification(Wire):
    series_name: str
    series_description: str | None = None
    agv_kinematic: _lax(AgvKinematic)
    agv_class: _lax(AgvClass)
    max_load_mass: NonNegative
    localization_types: list[_lax(LocalizationType)]
    navigation_types: list[_lax(NavigationType)]


class PhysicalParameters(Wire):
    speed_min: float
    speed_max: float
    acceleration_max: float
    deceleration_max: float
    height_min: float | None = None
    height_max: float
    width: float
    length: float


class MaxStringLens(Wire):
    msg_len: int | None = None
    topic_serial_len: int | None = None
    topic_elem_len: int | None = None
    id_len: int | None = None
    id_numerical_only: bool | None = None
    enum_len: int | None = None
    load_id_len: int | None = None


class MaxArrayLens(Wire):
    order_nodes: int | None = Field(default=None, alias="order.nodes")
    order_edges: int | None = Field(default=None, alias="order.edges")
    node_actions: int | None = Field(default=None, alias="node.actions")
    edge_actions: int | None = Field(default=None, alias="edge.actions")
    actions_parameters: int | None = Field(default=None, alias="actions.actionsParameters")
    instant_actions: int | None = Field(default=None, alias="instantActions")
    trajectory_knot_vector: int | None = Field(default=None, alias="trajectory.knotVector")
    trajectory_control_points: int | None = Field(
        default=None, alias="trajectory.controlPoints"
    )
    state_node_states: int | None = Field(default=None, alias="state.nodeStates")
    state_edge_states: int | None = Field(default=None, alias="state.edgeStates")
    state_loads: int | None = Field(default=None, alias="state.loads")
    state_action_states: int | None = Field(default=None, alias="state.actionStates")
    state_errors: int | None = Field(default=None, alias="state.errors")
    state_information: int | None = Field(default=None, alias="state.information")
    error_error_references: int | None = Field(default=None, alias="error.errorReferences")
    information_info_references: int | None = Field(
        default=None, alias="information.infoReferences"
    )


class Timing(Wire):
    min_order_interval: float
    min_state_interval: float
    default_state_interval: float | None = None
    visualization_interval: float | None = None


class ProtocolLimits(Wire):
    max_string_lens: MaxStringLens
    max_array_lens: MaxArrayLens
    timing: Timing


class OptionalParameter(Wire):
    parameter: str
    support: _lax(Support)
    description: str | None = None


class ActionParameterSpec(Wire):
    """How a vehicle declares one parameter of an action it supports."""

    key: str
    value_data_type: _lax(ValueDataType)
    description: str | None = None
    is_optional: bool | None = None


class AgvAction(Wire):
    action_type: str
    action_description: str | None = None
    action_scopes: list[_lax(ActionScope)]
    action_parameters: list[ActionParameterSpec] | None = None
    result_description: str | None = None
    # The official schema makes any value here invalid; leave it out when producing.
    blocking_types: list[_lax(BlockingType)] | None = None


class ProtocolFeatures(Wire):
    optional_parameters: list[OptionalParameter]
    agv_actions: list[AgvAction]


class WheelPosition(Wire):
    x: float
    y: float
    theta: float | None = None


class WheelDefinition(Wire):
    type: _lax(WheelType)
    is_active_driven: bool
    is_active_steered: bool
    position: WheelPosition
    diameter: float
    width: float
    center_displacement: float | None = None
    constraints: str | None = None


class PolygonPoint(Wire):
    x: float
    y: float


class Envelope2d(Wire):
    set: str
    polygon_points: list[PolygonPoint]
    description: str | None = None


class Envelope3d(Wire):
    set: str
    format: str
    data: dict[str, Any] | None = None
    url: str | None = None
    # The official schema says integer, the text says string; leave it out when producing.
    description: str | None = None


class AgvGeometry(Wire):
    wheel_definitions: list[WheelDefinition] | None = None
    envelopes2d: list[Envelope2d] | None = Field(default=None, alias="envelopes2d")
    envelopes3d: list[Envelope3d] | None = Field(default=None, alias="envelopes3d")


class LoadSet(Wire):
    set_name: str
    load_type: str
    load_positions: list[str] | None = None
    bounding_box_reference: BoundingBoxReference | None = None
    load_dimensions: LoadDimensions | None = None
    max_weight: float | None = None
    min_loadhandling_height: float | None = None
    max_loadhandling_height: float | None = None
    min_loadhandling_depth: float | None = None
    max_loadhandling_depth: float | None = None
    min_loadhandling_tilt: float | None = None
    max_loadhandling_tilt: float | None = None
    agv_speed_limit: float | None = None
    agv_acceleration_limit: float | None = None
    agv_deceleration_limit: float | None = None
    pick_time: float | None = None
    drop_time: float | None = None
    description: str | None = None


class LoadSpecification(Wire):
    load_positions: list[str] | None = None
    load_sets: list[LoadSet] | None = None


class VersionInfo(Wire):
    key: str
    value: str


class Network(Wire):
    dns_servers: list[str] | None = None
    local_ip_address: str | None = None
    ntp_servers: list[str] | None = None
    netmask: str | None = None
    default_gateway: str | None = None


class VehicleConfig(Wire):
    versions: list[VersionInfo] | None = None
    network: Network | None = None


class Factsheet(Wire):
    """What a vehicle type can do; the schema leaves headerId and timestamp optional."""

    header_id: UInt32 | None = None
    timestamp: Timestamp | None = None
    version: Version
    manufacturer: str
    serial_number: str
    type_specification: TypeSpecification
    physical_parameters: PhysicalParameters
    protocol_limits: ProtocolLimits
    protocol_features: ProtocolFeatures
    agv_geometry: AgvGeometry
    load_specification: LoadSpecification
    vehicle_config: VehicleConfig | None = None
