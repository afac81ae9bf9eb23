"""Hand-built VDA 5050 messages for the tests: for each type, a minimal one (required
fields only, empty arrays) and a full one (every optional field we can produce)."""

from __future__ import annotations

from typing import Any

from drivers.vda5050.messages import (
    LATEST_VERSION,
    Action,
    ActionParameter,
    ActionParameterSpec,
    ActionScope,
    ActionState,
    ActionStatus,
    AgvAction,
    AgvClass,
    AgvGeometry,
    AgvKinematic,
    AgvPosition,
    BatteryState,
    BlockingType,
    BoundingBoxReference,
    Connection,
    ConnectionState,
    ControlPoint,
    Corridor,
    CorridorRefPoint,
    Edge,
    EdgeState,
    EStop,
    Envelope2d,
    Envelope3d,
    ErrorLevel,
    Factsheet,
    Info,
    InfoLevel,
    InstantActions,
    Load,
    LoadDimensions,
    LoadSet,
    LoadSpecification,
    LocalizationType,
    MapStatus,
    MaxArrayLens,
    MaxStringLens,
    NavigationType,
    Network,
    Node,
    NodePosition,
    NodeState,
    OperatingMode,
    OptionalParameter,
    Order,
    OrientationType,
    PhysicalParameters,
    PolygonPoint,
    PredefinedAction,
    ProtocolFeatures,
    ProtocolLimits,
    Reference,
    SafetyState,
    State,
    Support,
    Timing,
    Trajectory,
    TypeSpecification,
    ValueDataType,
    VehicleConfig,
    VehicleError,
    VehicleMap,
    VersionInfo,
    Velocity,
    Visualization,
    WheelDefinition,
    WheelPosition,
    WheelType,
    Wire,
)

MANUFACTURER = "acme"
SERIAL = "AGV-001"
STAMP = "2026-11-22T09:41:58.123Z"


def header(header_id: int = 0, version: str = LATEST_VERSION, serial: str = SERIAL) -> dict[str, Any]:
    return {
        "header_id": header_id,
        "timestamp": STAMP,
        "version": version,
        "manufacturer": MANUFACTURER,
        "serial_number": serial,
    }


def pick(action_id: str = "a1", shelf: str = "shelf-7") -> Action:
    return Action(
        action_type=PredefinedAction.PICK,
        action_id=action_id,
        blocking_type=BlockingType.HARD,
        action_parameters=[ActionParameter(key="loadId", value=shelf)],
    )


def order_minimal(**overrides: Any) -> Order:
    return Order(
        **(header() | overrides),
        order_id="job-1",
        order_update_id=0,
        nodes=[Node(node_id="qr-1", sequence_id=0, released=True, actions=[])],
        edges=[],
    )


def order_full() -> Order:
    position = NodePosition(
        x=1.25, y=-2.5, theta=1.5707963267948966, allowed_deviation_xy=0.05,
        allowed_deviation_theta=0.1, map_id="floor-1", map_description="ground floor",
    )
    every_value = [
        ActionParameter(key="loadId", value="shelf-7"),
        ActionParameter(key="height", value=0.06),
        ActionParameter(key="count", value=3),
        ActionParameter(key="flag", value=True),
        ActionParameter(key="list", value=["a", 1, None]),
        ActionParameter(key="object", value={"nested": {"k": [1, 2]}}),
    ]
    action = Action(
        action_type=PredefinedAction.PICK, action_id="a1", action_description="lift the shelf",
        blocking_type=BlockingType.HARD, action_parameters=every_value,
    )
    return Order(
        **header(7),
        order_id="job-1",
        order_update_id=3,
        zone_set_id="zones-1",
        nodes=[
            Node(node_id="qr-1", sequence_id=0, node_description="start", released=True,
                 node_position=position, actions=[action]),
            Node(node_id="qr-2", sequence_id=2, released=True, node_position=position, actions=[]),
            Node(node_id="qr-3", sequence_id=4, released=False, actions=[]),
        ],
        edges=[
            Edge(
                edge_id="qr-1>qr-2", sequence_id=1, edge_description="east", released=True,
                start_node_id="qr-1", end_node_id="qr-2", max_speed=1.5, max_height=2.0,
                min_height=0.1, orientation=0.0, orientation_type=OrientationType.GLOBAL,
                direction="straight", rotation_allowed=False, max_rotation_speed=0.5,
                length=1.25,
                trajectory=Trajectory(
                    degree=1, knot_vector=[0.0, 0.0, 1.0, 1.0],
                    control_points=[ControlPoint(x=0, y=0, weight=1.0), ControlPoint(x=1.25, y=0)],
                ),
                corridor=Corridor(left_width=0.2, right_width=0.3,
                                  corridor_ref_point=CorridorRefPoint.CONTOUR),
                actions=[Action(action_type="beep", action_id="a2", blocking_type=BlockingType.NONE)],
            ),
            Edge(edge_id="qr-2>qr-3", sequence_id=3, released=False, start_node_id="qr-2",
                 end_node_id="qr-3", actions=[]),
        ],
    )


def instant_actions_minimal() -> InstantActions:
    return InstantActions(**header(), actions=[])


def instant_actions_full() -> InstantActions:
    init = Action(
        action_type=PredefinedAction.INIT_POSITION, action_id="i-init",
        blocking_type=BlockingType.HARD, action_description="set pose",
        action_parameters=[
            ActionParameter(key="x", value=1.0), ActionParameter(key="y", value=2.0),
            ActionParameter(key="theta", value=0.0), ActionParameter(key="mapId", value="floor-1"),
            ActionParameter(key="lastNodeId", value="qr-1"),
        ],
    )
    plain = [
        Action(action_type=kind, action_id=f"i-{kind}", blocking_type=BlockingType.NONE)
        for kind in (
            PredefinedAction.START_PAUSE, PredefinedAction.STOP_PAUSE,
            PredefinedAction.CANCEL_ORDER, PredefinedAction.STATE_REQUEST,
            PredefinedAction.FACTSHEET_REQUEST, PredefinedAction.START_CHARGING,
            PredefinedAction.STOP_CHARGING,
        )
    ]
    return InstantActions(**header(11), actions=[init, *plain])


def state_minimal(**overrides: Any) -> State:
    fields: dict[str, Any] = header() | {
        "order_id": "",
        "order_update_id": 0,
        "last_node_id": "",
        "last_node_sequence_id": 0,
        "driving": False,
        "operating_mode": OperatingMode.AUTOMATIC,
        "node_states": [],
        "edge_states": [],
        "action_states": [],
        "battery_state": BatteryState(battery_charge=80.0, charging=False),
        "errors": [],
        "safety_state": SafetyState(e_stop=EStop.NONE, field_violation=False),
    }
    return State(**(fields | overrides))


def state_full() -> State:
    refs = [Reference(reference_key="orderId", reference_value="job-1")]
    return State(
        **header(42),
        maps=[VehicleMap(map_id="floor-1", map_version="3", map_description="hall",
                         map_status=MapStatus.ENABLED)],
        order_id="job-1",
        order_update_id=3,
        zone_set_id="zones-1",
        last_node_id="qr-1",
        last_node_sequence_id=0,
        driving=True,
        paused=False,
        new_base_request=True,
        distance_since_last_node=0.4,
        operating_mode=OperatingMode.SEMIAUTOMATIC,
        node_states=[NodeState(node_id="qr-2", sequence_id=2, node_description="n", released=True,
                               node_position=NodePosition(x=1.25, y=0, theta=0, map_id="floor-1"))],
        edge_states=[EdgeState(
            edge_id="qr-1>qr-2", sequence_id=1, edge_description="e", released=True,
            trajectory=Trajectory(degree=1, knot_vector=[0, 0, 1, 1],
                                  control_points=[ControlPoint(x=0, y=0), ControlPoint(x=1, y=0)]),
        )],
        agv_position=AgvPosition(x=0.4, y=0.0, theta=0.0, map_id="floor-1", map_description="hall",
                                 position_initialized=True, localization_score=0.9,
                                 deviation_range=0.01),
        velocity=Velocity(vx=1.0, vy=0.0, omega=0.0),
        loads=[Load(load_id="shelf-7", load_type="shelf", load_position="turntable",
                    bounding_box_reference=BoundingBoxReference(x=0, y=0, z=0.3, theta=0),
                    load_dimensions=LoadDimensions(length=0.96, width=0.96, height=1.6),
                    weight=120.0)],
        action_states=[ActionState(action_id="a1", action_type="pick", action_description="lift",
                                   action_status=ActionStatus.FINISHED, result_description="ok")],
        battery_state=BatteryState(battery_charge=55.5, battery_voltage=48.1, battery_health=97,
                                   charging=False, reach=4000),
        errors=[VehicleError(error_type="orderUpdateError", error_references=refs,
                             error_description="lower orderUpdateId", error_hint="resend",
                             error_level=ErrorLevel.WARNING)],
        information=[Info(info_type="battery", info_references=refs, info_description="fine",
                          info_level=InfoLevel.INFO)],
        safety_state=SafetyState(e_stop=EStop.AUTOACK, field_violation=True),
    )


def connection(state: ConnectionState = ConnectionState.ONLINE, header_id: int = 0) -> Connection:
    return Connection(**header(header_id), connection_state=state)


def visualization_minimal() -> Visualization:
    return Visualization()


def visualization_full() -> Visualization:
    return Visualization(
        **header(5),
        agv_position=AgvPosition(x=1, y=2, theta=-3.0, map_id="floor-1", position_initialized=True),
        velocity=Velocity(vx=0.5),
    )


def factsheet_minimal() -> Factsheet:
    return Factsheet(
        version=LATEST_VERSION,
        manufacturer=MANUFACTURER,
        serial_number=SERIAL,
        type_specification=TypeSpecification(
            series_name="under-ride", agv_kinematic=AgvKinematic.DIFF, agv_class=AgvClass.CARRIER,
            max_load_mass=600, localization_types=[LocalizationType.GRID],
            navigation_types=[NavigationType.VIRTUAL_LINE_GUIDED],
        ),
        physical_parameters=PhysicalParameters(
            speed_min=0.0, speed_max=1.5, acceleration_max=1.0, deceleration_max=1.5,
            height_max=0.36, width=0.8, length=0.95,
        ),
        protocol_limits=ProtocolLimits(
            max_string_lens=MaxStringLens(), max_array_lens=MaxArrayLens(),
            timing=Timing(min_order_interval=0.5, min_state_interval=0.1),
        ),
        protocol_features=ProtocolFeatures(optional_parameters=[], agv_actions=[]),
        agv_geometry=AgvGeometry(),
        load_specification=LoadSpecification(),
    )


def factsheet_full() -> Factsheet:
    minimal = factsheet_minimal()
    actions = [
        AgvAction(action_type=PredefinedAction.PICK, action_description="lift a shelf",
                  action_scopes=[ActionScope.NODE],
                  action_parameters=[ActionParameterSpec(key="loadId",
                                                         value_data_type=ValueDataType.STRING,
                                                         description="shelf id", is_optional=False)],
                  result_description="none"),
        AgvAction(action_type=PredefinedAction.CANCEL_ORDER,
                  action_scopes=[ActionScope.INSTANT]),
    ]
    return minimal.model_copy(update={
        "header_id": 1,
        "timestamp": STAMP,
        "protocol_limits": ProtocolLimits(
            max_string_lens=MaxStringLens(msg_len=65536, topic_serial_len=32, topic_elem_len=32,
                                          id_len=64, id_numerical_only=False, enum_len=32,
                                          load_id_len=32),
            max_array_lens=MaxArrayLens(order_nodes=100, order_edges=99, node_actions=4,
                                        edge_actions=2, actions_parameters=8, instant_actions=8,
                                        trajectory_knot_vector=10, trajectory_control_points=8,
                                        state_node_states=100, state_edge_states=99, state_loads=1,
                                        state_action_states=200, state_errors=20,
                                        state_information=10, error_error_references=5,
                                        information_info_references=5),
            timing=Timing(min_order_interval=0.5, min_state_interval=0.1,
                          default_state_interval=30, visualization_interval=0.5),
        ),
        "protocol_features": ProtocolFeatures(
            optional_parameters=[
                OptionalParameter(parameter="order.nodes.nodePosition.theta",
                                  support=Support.SUPPORTED, description="heading to hold"),
                OptionalParameter(parameter="order.nodes.nodePosition",
                                  support=Support.REQUIRED),
            ],
            agv_actions=actions,
        ),
        "agv_geometry": AgvGeometry(
            wheel_definitions=[WheelDefinition(
                type=WheelType.DRIVE, is_active_driven=True, is_active_steered=False,
                position=WheelPosition(x=0, y=0.3, theta=0), diameter=0.2, width=0.05,
                center_displacement=0.0, constraints="none",
            )],
            envelopes2d=[Envelope2d(set="unloaded", description="body",
                                    polygon_points=[PolygonPoint(x=-0.5, y=-0.4),
                                                    PolygonPoint(x=0.5, y=-0.4),
                                                    PolygonPoint(x=0.5, y=0.4)])],
            envelopes3d=[Envelope3d(set="loaded", format="DXF", data={"lines": []},
                                    url="ftp://example.invalid/envelope")],
        ),
        "load_specification": LoadSpecification(
            load_positions=["turntable"],
            load_sets=[LoadSet(
                set_name="shelf", load_type="shelf", load_positions=["turntable"],
                bounding_box_reference=BoundingBoxReference(x=0, y=0, z=0.36),
                load_dimensions=LoadDimensions(length=0.96, width=0.96, height=1.6),
                max_weight=600, min_loadhandling_height=0.3, max_loadhandling_height=0.36,
                min_loadhandling_depth=0, max_loadhandling_depth=0, min_loadhandling_tilt=0,
                max_loadhandling_tilt=0, agv_speed_limit=1.0, agv_acceleration_limit=0.5,
                agv_deceleration_limit=1.0, pick_time=3, drop_time=3, description="pod",
            )],
        ),
        "vehicle_config": VehicleConfig(
            versions=[VersionInfo(key="firmware", value="1.2.3")],
            network=Network(dns_servers=["10.0.0.1"], local_ip_address="10.0.0.7",
                            ntp_servers=["10.0.0.1"], netmask="255.255.255.0",
                            default_gateway="10.0.0.1"),
        ),
    })


# topic -> builders of the samples of that message type
SAMPLES: dict[str, list[Any]] = {
    "order": [order_minimal, order_full],
    "instantActions": [instant_actions_minimal, instant_actions_full],
    "state": [state_minimal, state_full],
    "connection": [lambda s=s: connection(s) for s in ConnectionState],
    "visualization": [visualization_minimal, visualization_full],
    "factsheet": [factsheet_minimal, factsheet_full],
}


def all_samples() -> list[tuple[str, str, Wire]]:
    """(topic, label, message) for every sample."""
    found = []
    for topic, builders in SAMPLES.items():
        for index, build in enumerate(builders):
            found.append((topic, f"{topic}-{index}", build()))
    return found
