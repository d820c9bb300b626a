"""HTTP endpoints, one module per resource. Each exposes `routes`."""
