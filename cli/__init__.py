"""The `provenance` command: argument parsing, progress bars and rendering, nothing a library user needs."""
