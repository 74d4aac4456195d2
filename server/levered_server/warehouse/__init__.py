"""Warehouse drivers behind one interface, found through stevedore (`levered.warehouse`)."""
