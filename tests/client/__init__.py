"""The library against FakeBabou over loopback sockets (and real child processes)."""
