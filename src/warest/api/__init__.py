"""The HTTP layer: Litestar app factory, controllers, envelope and error mapping."""
