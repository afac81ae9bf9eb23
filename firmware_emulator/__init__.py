"""The robots' side: emulated drive units and the physical world they move in (an independent witness)."""
