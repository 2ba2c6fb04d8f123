"""Department webhook endpoints: registration, fan-out of events, failing endpoints."""
