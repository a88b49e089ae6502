"""The faust-streaming service around the allocator core, and the `allocator` CLI."""
