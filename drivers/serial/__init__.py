"""The framed serial protocol (docs/serial-protocol.md) and its link for robots on serial ports.

frames: COBS framing and CRC; messages: typed payloads; channel: sequencing, acks and
retransmission (sans-IO); port: pyserial transport and its thread; translate: messages to
and from fleet commands and events; link: SerialLink, the master's RobotLink; robot: the
robot's side of a port; line: pseudo-terminal pairs, a fault-injecting relay and a TCP
terminal server, for benches and emulators.
"""
