"""The reading core: notebooks -> tags -> code facts -> Pipeline -> generated files."""
