"""Pure domain types shared by workflows, activities and the API: no I/O, sandbox-safe."""
