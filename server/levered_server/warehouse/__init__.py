"""Warehouse drivers behind one contract (`driver_api`), found through the
`levered.warehouse.v1` entry points (`manager`)."""
