"""HTTP controllers: thin; parse, call the application, shape the envelope."""
