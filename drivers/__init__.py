"""The wire: one robot-link interface (link.py) and its transports (in-process, VDA 5050, serial)."""
