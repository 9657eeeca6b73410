"""
Pure units: the sans-I/O core, the resume machine, options, models, errors, rate arithmetic.

No sockets, no event loop.
"""
