"""FakeBabou itself: the simulator's endpoints, faults and inspection."""
