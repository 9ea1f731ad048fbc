"""The floor benchmark's bare processes (tests/benchmark_floor.py): no Django, no business logic."""
