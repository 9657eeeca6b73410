"""Against simulators and hostile servers written independently of FakeBabou."""
