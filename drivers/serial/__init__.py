"""The framed serial protocol (docs/serial-protocol.md) and its link for robots on serial ports.

frames: COBS framing and CRC; messages: typed payloads; channel: sequencing, acks and
retransmission (sans-IO); port: pyserial transport and its thread; link: SerialLink, the
master's RobotLink; robot: the robot's side of a port; line: pseudo-terminal pairs and a
fault-injecting relay for benches and emulators.
"""
