"""One module per family of commands; each command parses its arguments and calls one public function."""
