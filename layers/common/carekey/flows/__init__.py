"""One module per group of flows; each flow reads top to bottom: load, check,
change atomically, respond."""
