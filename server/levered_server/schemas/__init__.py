"""Pydantic schemas: `XCreate`/`XUpdate` (requests), `XPublic`/`XList` (responses)."""
