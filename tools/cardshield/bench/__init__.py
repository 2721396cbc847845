"""Benchmarks (`./cardshield bench card`, `./cardshield bench`): card operations and flows on the
virtual card, written to docs/benchmarks.md next to the server figures of
`cardshield server bench`. Measurements, not tests: nothing here asserts a speed."""
