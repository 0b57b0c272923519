"""What the tests share and no test module owns: writers of test inputs, the bound on hostile input, a fake
hub, the real loaders. Fixtures shared across rooms live in `limits` and `references`, registered as plugins
by tests/conftest.py; the benchmarks import writers from here too."""
