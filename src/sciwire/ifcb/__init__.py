"""sciwire.ifcb: IFCB client over SignalR, the IFCB message codec, and an instrument simulator."""
