"""
The pytest plugin (the ``pytest11`` entry point): fixtures for testing code that uses babou_async.

It defines fixtures only, so a test suite that does not ask for them is unaffected.
"""
