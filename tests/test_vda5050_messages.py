"""The message models against the official VDA 5050 schemas (loaded from ../shared)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from drivers.vda5050 import messages as m
from drivers.vda5050.messages import MessageError, decode, encode
from conftest import unknown_keys
from vda5050_samples import all_samples, factsheet_full, header, order_minimal, state_full, state_minimal

MODEL_OF = {
    "order": m.Order,
    "instantActions": m.InstantActions,
    "state": m.State,
    "visualization": m.Visualization,
    "connection": m.Connection,
    "factsheet": m.Factsheet,
}
SAMPLES = all_samples()
IDS = [label for _, label, _ in SAMPLES]


def as_json(message: m.Wire) -> Any:
    return orjson.loads(encode(message))


def schema_errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize(("topic", "label", "message"), SAMPLES, ids=IDS)
def test_every_sample_is_valid_against_the_official_schema(vda5050_schemas, topic, label, message):
    assert schema_errors(vda5050_schemas[topic], as_json(message)) == []


@pytest.mark.parametrize(("topic", "label", "message"), SAMPLES, ids=IDS)
def test_every_field_we_send_is_named_in_the_official_schema(vda5050_schemas, topic, label, message):
    schema = vda5050_schemas[topic].schema
    assert unknown_keys(schema, as_json(message), schema) == []


@pytest.mark.parametrize(("topic", "label", "message"), SAMPLES, ids=IDS)
def test_model_round_trip(topic, label, message):
    assert decode(MODEL_OF[topic], encode(message)) == message


@pytest.mark.parametrize(("topic", "label", "message"), SAMPLES, ids=IDS)
def test_json_round_trip_gives_the_same_object(topic, label, message):
    payload = as_json(message)
    assert as_json(decode(MODEL_OF[topic], orjson.dumps(payload))) == payload


def test_foreign_json_round_trips_exactly_with_vendor_fields_and_short_fractions():
    """A payload written by someone else: two-digit fractions, integers for floats,
    keys in another order and a vendor extension all survive parse -> dump."""
    payload = {
        "serialNumber": "X1", "manufacturer": "other", "version": "2.0.0",
        "timestamp": "2017-04-15T11:40:03.12Z", "headerId": 4294967295,
        "orderId": "o", "orderUpdateId": 0, "lastNodeId": "n", "lastNodeSequenceId": 0,
        "driving": False, "operatingMode": "MANUAL", "nodeStates": [], "edgeStates": [],
        "actionStates": [], "errors": [],
        "batteryState": {"batteryCharge": 20, "charging": True},
        "safetyState": {"eStop": "REMOTE", "fieldViolation": False},
        "vendorDiagnostics": {"motorTemp": [41, 42], "note": None},
    }
    state = decode(m.State, orjson.dumps(payload))
    assert state.battery_state.battery_charge == 20.0
    assert as_json(state) == payload


def test_optional_fields_are_omitted_never_null():
    payload = as_json(state_minimal())
    for optional in ("maps", "zoneSetId", "paused", "newBaseRequest", "distanceSinceLastNode",
                     "agvPosition", "velocity", "loads", "information"):
        assert optional not in payload
    assert b"null" not in encode(state_minimal())
    assert payload["nodeStates"] == [] and payload["errors"] == []


def test_python_none_means_absent():
    order = order_minimal(zone_set_id=None)
    assert "zoneSetId" not in as_json(order)


def test_empty_loads_array_is_kept_distinct_from_absent_loads(vda5050_schemas):
    """[] means 'unloaded'; absent means 'cannot tell' (spec 6.10.6): both must survive."""
    unloaded = state_minimal(loads=[])
    assert as_json(unloaded)["loads"] == []
    assert decode(m.State, encode(unloaded)).loads == []
    assert decode(m.State, encode(state_minimal())).loads is None
    assert schema_errors(vda5050_schemas["state"], as_json(unloaded)) == []


# --- enumerations: ours against the schema's, every value valid on the wire ---------------

def schema_enum(validator: Draft202012Validator, *path: str) -> set[str]:
    node = validator.schema
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return set(node["enum"])


ENUMS = [
    (m.BlockingType, "order", ("nodes", "[]", "actions", "[]")),  # via definitions, see below
    (m.ActionStatus, "state", ("actionStates", "[]", "actionStatus")),
    (m.ErrorLevel, "state", ("errors", "[]", "errorLevel")),
    (m.InfoLevel, "state", ("information", "[]", "infoLevel")),
    (m.ConnectionState, "connection", ("connectionState",)),
    (m.OperatingMode, "state", ("operatingMode",)),
    (m.EStop, "state", ("safetyState", "eStop")),
    (m.MapStatus, "state", ("maps", "[]", "mapStatus")),
    (m.CorridorRefPoint, "order", ("edges", "[]", "corridor", "corridorRefPoint")),
    (m.AgvKinematic, "factsheet", ("typeSpecification", "agvKinematic")),
    (m.AgvClass, "factsheet", ("typeSpecification", "agvClass")),
    (m.LocalizationType, "factsheet", ("typeSpecification", "localizationTypes", "[]")),
    (m.NavigationType, "factsheet", ("typeSpecification", "navigationTypes", "[]")),
    (m.Support, "factsheet", ("protocolFeatures", "optionalParameters", "[]", "support")),
    (m.ActionScope, "factsheet", ("protocolFeatures", "agvActions", "[]", "actionScopes", "[]")),
    (m.ValueDataType, "factsheet",
     ("protocolFeatures", "agvActions", "[]", "actionParameters", "[]", "valueDataType")),
    (m.WheelType, "factsheet", ("agvGeometry", "wheelDefinitions", "[]", "type")),
]


@pytest.mark.parametrize(("enum", "topic", "path"), ENUMS, ids=[e.__name__ for e, _, _ in ENUMS])
def test_our_enumerations_match_the_schema(vda5050_schemas, enum, topic, path):
    validator = vda5050_schemas[topic]
    if enum is m.BlockingType:
        expected = set(validator.schema["definitions"]["action"]["properties"]["blockingType"]["enum"])
    else:
        expected = schema_enum(validator, *path)
    ours = {member.value for member in enum}
    if enum is m.ActionStatus:
        # The specification text (which wins) lists PAUSED; the schema forgot it.
        assert ours - expected == {"PAUSED"}
        ours.discard("PAUSED")
    assert ours == expected


def with_action_status(status: m.ActionStatus) -> m.State:
    return state_minimal(action_states=[m.ActionState(action_id="a", action_status=status)])


def with_error_level(level: m.ErrorLevel) -> m.State:
    return state_minimal(errors=[m.VehicleError(error_type="t", error_level=level)])


def with_operating_mode(mode: m.OperatingMode) -> m.State:
    return state_minimal(operating_mode=mode)


def with_estop(kind: m.EStop) -> m.State:
    return state_minimal(safety_state=m.SafetyState(e_stop=kind, field_violation=True))


def with_info_level(level: m.InfoLevel) -> m.State:
    return state_minimal(information=[m.Info(info_type="i", info_level=level)])


def with_map_status(status: m.MapStatus) -> m.State:
    return state_minimal(maps=[m.VehicleMap(map_id="f", map_version="1", map_status=status)])


def with_blocking_type(kind: m.BlockingType) -> m.InstantActions:
    action = m.Action(action_type="stateRequest", action_id="x", blocking_type=kind)
    return m.InstantActions(**header(), actions=[action])


def with_connection_state(kind: m.ConnectionState) -> m.Connection:
    return m.Connection(**header(), connection_state=kind)


def with_orientation_type(kind: m.OrientationType) -> m.Order:
    order = order_minimal()
    nodes = [order.nodes[0], m.Node(node_id="qr-2", sequence_id=2, released=True, actions=[])]
    edge = m.Edge(edge_id="e", sequence_id=1, released=True, start_node_id="qr-1",
                  end_node_id="qr-2", orientation=0.5, orientation_type=kind, actions=[])
    return order.model_copy(update={"nodes": nodes, "edges": [edge]})


EVERY_VALUE = [
    ("state", with_action_status, [s for s in m.ActionStatus if s != m.ActionStatus.PAUSED]),
    ("state", with_error_level, list(m.ErrorLevel)),
    ("state", with_operating_mode, list(m.OperatingMode)),
    ("state", with_estop, list(m.EStop)),
    ("state", with_info_level, list(m.InfoLevel)),
    ("state", with_map_status, list(m.MapStatus)),
    ("instantActions", with_blocking_type, list(m.BlockingType)),
    ("connection", with_connection_state, list(m.ConnectionState)),
    ("order", with_orientation_type, list(m.OrientationType)),
]


@pytest.mark.parametrize(
    ("topic", "build", "value"),
    [(topic, build, value) for topic, build, values in EVERY_VALUE for value in values],
    ids=lambda v: v.value if isinstance(v, StrEnum) else getattr(v, "__name__", str(v)),
)
def test_every_enum_value_is_valid_and_round_trips(vda5050_schemas, topic, build, value):
    message = build(value)
    assert schema_errors(vda5050_schemas[topic], as_json(message)) == []
    assert decode(MODEL_OF[topic], encode(message)) == message
    assert value.value in encode(message).decode()


def test_paused_action_status_is_parsed_although_the_official_schema_rejects_it(vda5050_schemas):
    message = with_action_status(m.ActionStatus.PAUSED)
    assert decode(m.State, encode(message)).action_states[0].action_status is m.ActionStatus.PAUSED
    assert schema_errors(vda5050_schemas["state"], as_json(message)) != []


def test_factsheet_schema_defects_that_make_us_omit_two_optional_fields(vda5050_schemas):
    """blockingTypes and envelopes3d.description cannot be produced schema-valid; we parse
    them as the text defines them, and our factsheets leave them out."""
    sheet = as_json(factsheet_full())
    with_blocking = copy.deepcopy(sheet)
    with_blocking["protocolFeatures"]["agvActions"][0]["blockingTypes"] = ["HARD"]
    assert schema_errors(vda5050_schemas["factsheet"], with_blocking) != []
    parsed = decode(m.Factsheet, orjson.dumps(with_blocking))
    assert parsed.protocol_features.agv_actions[0].blocking_types == [m.BlockingType.HARD]
    with_text = copy.deepcopy(sheet)
    with_text["agvGeometry"]["envelopes3d"][0]["description"] = "outline"
    assert schema_errors(vda5050_schemas["factsheet"], with_text) != []
    assert decode(m.Factsheet, orjson.dumps(with_text)).agv_geometry.envelopes3d[0].description == "outline"


# --- header: versions and timestamps ------------------------------------------------------------

@pytest.mark.parametrize("version", m.SUPPORTED_VERSIONS)
def test_both_supported_header_versions_are_accepted(vda5050_schemas, version):
    message = m.Connection(**header(version=version), connection_state=m.ConnectionState.ONLINE)
    assert decode(m.Connection, encode(message)).version == version
    assert schema_errors(vda5050_schemas["connection"], as_json(message)) == []


@pytest.mark.parametrize(("topic", "label", "message"), SAMPLES, ids=IDS)
def test_stamping_gives_the_message_with_that_header_id_and_timestamp(topic, label, message):
    """The link stamps by splicing the JSON of a message built unstamped, and the long way
    for any other; both must equal the message copied with the two fields."""
    stamp = "2026-11-22T09:41:58.123Z"
    unstamped = message.model_copy(update={"header_id": 0, "timestamp": m.UNSTAMPED})
    for built in (message, unstamped):
        expected = as_json(built.model_copy(update={"header_id": 4294967295, "timestamp": stamp}))
        assert orjson.loads(m.encode_stamped(built, 4294967295, stamp)) == expected
    assert m.encode_stamped(unstamped, 7, stamp).startswith(b'{"headerId":7,"timestamp":"' + stamp.encode())


@pytest.mark.parametrize("version", ["1.1.0", "2.2.0", "3.0.0", "2.1", "v2"])
def test_other_header_versions_are_rejected_with_the_supported_list(version):
    payload = as_json(m.Connection(**header(), connection_state=m.ConnectionState.ONLINE))
    payload["version"] = version
    with pytest.raises(MessageError, match=r"version: unsupported protocol version .*2\.0\.0, 2\.1\.0"):
        decode(m.Connection, orjson.dumps(payload))


def test_timestamp_has_milliseconds_and_z(vda5050_schemas):
    moment = datetime(2026, 11, 22, 9, 41, 58, 123456, tzinfo=UTC)
    assert m.format_timestamp(moment) == "2026-11-22T09:41:58.123Z"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert m.format_timestamp(plus_two) == "2026-11-22T09:41:58.123Z"
    assert m.parse_timestamp("2026-11-22T09:41:58.123Z") == moment.replace(microsecond=123000)
    with pytest.raises(ValueError, match="aware"):
        m.format_timestamp(datetime(2026, 11, 22))


# --- invalid input: rejected, with the reason ----------------------------------------------------

def mutate(payload: dict, path: tuple, value: Any = ...) -> dict:
    """A deep copy with the field at `path` replaced by `value` (deleted when omitted)."""
    result = copy.deepcopy(payload)
    node = result
    for step in path[:-1]:
        node = node[step]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return result


STATE = as_json(state_full())
ORDER = as_json(m.Order.model_validate_json(encode(order_minimal())))

INVALID = [
    # (label, kind, payload bytes, expected error text, the official schema rejects it too)
    ("missing headerId", m.State, mutate(STATE, ("headerId",)), r"headerId: Field required", True),
    ("string for integer", m.State, mutate(STATE, ("orderUpdateId",), "3"),
     r"orderUpdateId: Input should be a valid integer", True),
    ("0 for boolean", m.State, mutate(STATE, ("driving",), 0),
     r"driving: Input should be a valid boolean", True),
    ("string for number", m.State, mutate(STATE, ("batteryState", "batteryCharge"), "55"),
     r"batteryState.batteryCharge: Input should be a valid number", True),
    ("unknown enum", m.State, mutate(STATE, ("operatingMode",), "AUTO"),
     r"operatingMode: Input should be 'AUTOMATIC'", True),
    ("unknown eStop", m.State, mutate(STATE, ("safetyState", "eStop"), "YES"),
     r"safetyState.eStop: Input should be", True),
    ("bad timestamp", m.State, mutate(STATE, ("timestamp",), "22.11.2026 09:41"),
     r"timestamp: timestamp '22.11.2026 09:41' is not ISO 8601", True),
    ("impossible date", m.State, mutate(STATE, ("timestamp",), "2026-02-30T00:00:00Z"),
     r"timestamp: .*not a valid date", True),
    ("null optional", m.State, mutate(STATE, ("paused",), None), r"paused is null", True),
    ("score above 1", m.State, mutate(STATE, ("agvPosition", "localizationScore"), 1.5),
     r"agvPosition.localizationScore: Input should be less than or equal to 1", True),
    ("negative weight", m.State, mutate(STATE, ("loads", 0, "weight"), -1),
     r"loads.0.weight: Input should be greater than or equal to 0", True),
    ("array for object", m.State, mutate(STATE, ("batteryState",), []),
     r"batteryState: Input should be an object", True),
    ("object for array", m.State, mutate(STATE, ("errors",), {}),
     r"errors: Input should be a valid (list|array)", True),
    ("missing error level", m.State, mutate(STATE, ("errors", 0, "errorLevel")),
     r"errors.0.errorLevel: Field required", True),
    ("headerId above uint32", m.State, mutate(STATE, ("headerId",), 2**32),
     r"headerId: Input should be less than or equal to 4294967295", False),
    ("negative orderUpdateId", m.Order, mutate(ORDER, ("orderUpdateId",), -1),
     r"orderUpdateId: Input should be greater than or equal to 0", True),
    ("theta above pi", m.Order, mutate(ORDER, ("nodes", 0, "nodePosition"), {"x": 0, "y": 0, "theta": 4, "mapId": "f"}),
     r"nodes.0.nodePosition.theta: Input should be less than or equal to 3.14", True),
    ("missing node actions", m.Order, mutate(ORDER, ("nodes", 0, "actions")),
     r"nodes.0.actions: Field required", True),
    ("unknown blocking type", m.Order,
     mutate(ORDER, ("nodes", 0, "actions"), [{"actionType": "pick", "actionId": "a", "blockingType": "FIRM"}]),
     r"nodes.0.actions.0.blockingType: Input should be 'NONE', 'SOFT' or 'HARD'", True),
    ("null parameter value", m.Order,
     mutate(ORDER, ("nodes", 0, "actions"), [{"actionType": "pick", "actionId": "a", "blockingType": "HARD",
                                               "actionParameters": [{"key": "k", "value": None}]}]),
     r"nodes.0.actions.0.actionParameters.0.value\.", True),
    ("snake_case field", m.Order, mutate(mutate(ORDER, ("orderId",)), ("order_id",), "o"),
     r"orderId: Field required", True),
    ("null in a nested object", m.State, mutate(STATE, ("agvPosition", "deviationRange"), None),
     r"agvPosition.deviationRange is null", True),
    ("null in a list item", m.State, mutate(STATE, ("loads", 0, "loadType"), None),
     r"loads.0.loadType is null", True),
]


@pytest.mark.parametrize(("label", "kind", "payload", "expected", "schema_rejects"), INVALID,
                         ids=[case[0] for case in INVALID])
def test_invalid_messages_are_rejected_with_a_specific_reason(
    vda5050_schemas, label, kind, payload, expected, schema_rejects
):
    with pytest.raises(MessageError) as caught:
        decode(kind, orjson.dumps(payload))
    assert caught.value.reason == "schema violation"
    assert caught.value.kind == kind.__name__
    assert caught.match(expected)
    topic = "state" if kind is m.State else "order"
    assert bool(schema_errors(vda5050_schemas[topic], payload)) == schema_rejects


@pytest.mark.parametrize("payload", [b"", b"{", b"nul", b'{"headerId": 1,}', b"\xff\xfe{}", b"{'a': 1}"])
def test_bad_json_is_reported_as_bad_json(payload):
    with pytest.raises(MessageError) as caught:
        decode(m.State, payload)
    assert caught.value.reason == "bad JSON"


@pytest.mark.parametrize("payload", [b"[]", b"42", b'"state"', b"true", b"null"])
def test_json_that_is_not_an_object_is_a_schema_violation(payload):
    with pytest.raises(MessageError, match=r"State: schema violation: \(message\): Input should be an object"):
        decode(m.State, payload)


@pytest.mark.parametrize("payload", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": 1e999}'])
def test_nan_and_infinity_are_rejected(payload):
    with pytest.raises(MessageError):
        decode(m.Velocity, payload.replace(b'"x"', b'"vx"'))


# --- differential: our parser and the official schema agree on random corruptions ----------------

PALETTE: list[Any] = [None, "x", "", 7, -3, 1.5, True, False, [], {}, [1], {"a": 1},
                      "2026-11-22T09:41:58.123Z", "ONLINE", 10**12]

# Fields where we apply the specification's ranges and the schema does not (uint32 ids,
# allowedDeviationTheta in [0, pi], NURBS degree >= 1 and weights >= 0 in state, which
# the order schema does apply), and the protocol versions we speak.
KNOWN_STRICTER = ("version", "headerId", "orderUpdateId", "sequenceId", "lastNodeSequenceId",
                  "allowedDeviationTheta", "degree", "controlPoints")


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += leaf_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += leaf_paths(value, prefix + (index,))
    return paths


def inside_free_value(path: tuple) -> bool:
    """Inside an action parameter value or envelope data: JSON of any shape is valid there."""
    return any(step in ("value", "data") for step in path[:-1])


@pytest.mark.parametrize(("topic", "label", "message"),
                         [s for s in SAMPLES if s[1].endswith("-1") or s[0] == "connection"],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_parser_and_official_schema_agree_on_random_corruptions(vda5050_schemas, topic, label, message):
    rng = random.Random(f"vda5050-{label}")
    original = as_json(message)
    paths = [p for p in leaf_paths(original) if not inside_free_value(p)]
    disagreements = []
    verdicts = set()
    for _ in range(300):
        path = rng.choice(paths)
        corrupted = mutate(original, path) if rng.random() < 0.3 else mutate(original, path, rng.choice(PALETTE))
        schema_ok = not schema_errors(vda5050_schemas[topic], corrupted)
        try:
            decode(MODEL_OF[topic], orjson.dumps(corrupted))
            ours_ok = True
        except MessageError:
            ours_ok = False
        verdicts.add(ours_ok)
        if schema_ok != ours_ok and not any(str(step) in KNOWN_STRICTER for step in path):
            disagreements.append((path, corrupted if len(str(corrupted)) < 300 else "...", schema_ok))
    assert disagreements == []
    assert verdicts == {True, False}  # the corruptions exercised both outcomes
